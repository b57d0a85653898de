// DMD2Train: the pieces every training loop in swift-dmd2 shares (the EDM teacher's and DMD2's).
//
//   AdamW.swift         AdamW as PyTorch computes it, warm-up schedule, strict state files
//   EMA.swift           parameter EMA: fixed decay or EDM's half-life in images with ramp-up
//   NonFinite.swift     stop at the first NaN/±∞ in a loss or gradient, naming step and tensor
//   ProgressBar.swift   iteration/total, rate, ETA and a status; in place on a terminal, plain
//                       lines in logs
//   JSONLinesLog.swift  one JSON object per line, flushed; truncation for resumed runs
// Gradient clipping by global norm is DMD2Ops's `clipGradNorm(_:maxNorm:)`.
