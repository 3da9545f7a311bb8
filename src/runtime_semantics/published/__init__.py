"""The authors' published data (docs/paper.md#published-data): fetch it, import it into our formats, replay it.

tasks_import (their tasks -> our tasks JSONL), trace_events / trace_messages (their traces ->
our Trace), benchmarks_import (-> our per-episode results), teacher_import (-> the traces
stage's layout), importer (all three into artifacts/published/), fetch (huggingface_hub),
replay / replay_report (re-run their code in our sandbox and report agreement).
"""
