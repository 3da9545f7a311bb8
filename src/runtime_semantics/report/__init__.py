"""Analysis outputs + the paper's reference numbers -> the rendered results section (the `report` stage)."""
