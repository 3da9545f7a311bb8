"""Fine-tuning the student on teacher traces: SFT data now; QLoRA and the tiny CPU base next (issue 6)."""
