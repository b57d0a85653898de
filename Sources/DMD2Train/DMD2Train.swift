// DMD2Train: the pieces every training loop in swift-dmd2 shares (the EDM teacher's and DMD2's).
//
//   AdamW.swift         AdamW as PyTorch computes it, warm-up schedule, strict state files
//   EMA.swift           parameter EMA: fixed decay or EDM's half-life in images with ramp-up
//   NonFinite.swift     stop at the first NaN/±∞ in a loss, gradient or the state an update
//                       wrote, naming step and tensor; learning rates checked in T's precision
//   CheckpointFolders.swift  checkpoint folders written atomically, and RunCheckpointLayout: the
//                       one mechanism both trainers' checkpoints use (manifest, find, write)
//   RunFolder.swift     the run folder's lock (flock, holder's PID), writability check, the
//                       settings a resume would change
//   ProgressBar.swift   iteration/total, rate, ETA and a status; in place on a terminal, plain
//                       lines in logs
//   JSONLinesLog.swift  one JSON object per line, flushed; truncation for resumed runs
// Gradient clipping by global norm is DMD2Ops's `clipGradNorm(_:maxNorm:)`.
