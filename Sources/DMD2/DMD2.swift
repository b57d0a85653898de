// DMD2: Improved Distribution Matching Distillation (Yin et al., NeurIPS 2024), written from
// ../shared/docs/METHOD.md §2–§3. The files of this module, one idea each, are listed here as
// they land.
