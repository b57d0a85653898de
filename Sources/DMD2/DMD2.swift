// DMD2: distribution matching distillation of an EDM teacher into a one-step generator
// (Yin et al., "Improved Distribution Matching Distillation for Fast Image Synthesis",
// NeurIPS 2024), exactly as docs/METHOD.md §2 specifies, or into a few-step one with
// backward simulation (§3). Map of the module, one idea
// per file, in reading order:
//
//   SigmaGrid.swift        K: the 1000 Karras levels 0.002 … 80, ascending, that every loss
//                          indexes (t ∈ 20…980 for distribution matching, 0…999 elsewhere)
//   GANHead.swift          D: conv k4s2 → GN → SiLU → conv k4s4 → GN → SiLU → conv k1 on
//                          μ_fake's 8×8 encoder bottleneck; names `cls_pred_branch.{0,1,3,4,6}.…`
//   Networks.swift         DMD2Networks: G, μ_real (frozen), μ_fake, D — G and μ_fake copies of
//                          the teacher, dropout 0; the generator's input x = σ_max·z at σ_max = 80
//   Draws.swift            NoiseDraw (t, ε) and IterationDraws: every random number of an
//                          iteration, drawn by the caller in a fixed order
//   Losses.swift           distributionMatchingLoss (L_DM), fakeCriticLoss (L_fake),
//                          discriminatorLoss (L_D), generatorGANLoss (L_G), regressionLoss
//   UpdateRule.swift       DMD2Objective.iterate: the two time-scale update — G's phase every
//                          `ratio` iterations, the critic's every iteration, NaN checks, clipping
//                          at norm 10, AdamW ×2
//   DistillConfig.swift    the run's settings (the ImageNet recipe's values as defaults) and switches
//   RegressionPairs.swift  the original DMD's (z, teacher Heun sample) pairs, made and read
//   Trainer.swift          DistillTrainer: the loop, log.jsonl, atomic checkpoints, bitwise resume
//   FewStep.swift          GeneratorSchedule: the k-step σ schedule K[999 − i·⌊1000/k⌋], the
//                          rollout (inference and backward simulation share it) and G's training
//                          input at step j (docs/METHOD.md §3)
//   Generator.swift        DMD2Generator: a trained G for sampling and
//                          evaluation, one step x = G(80·z; 80, y) or the schedule it was trained on
//   DebugState.swift       one generator + one critic step with every tensor in one file, the
//                          contract for other implementations (docs/DEBUG-STATE.md); with
//                          `generatorSteps` > 1 the few-step variant (rollout keys `fewstep.…`)
//
// The few-step generator (docs/METHOD.md §3, docs/FEW-STEP.md) reuses `GeneratorInput` /
// `DMD2Networks.generate` with its own inputs (x̂_{j−1} + σ_j·ε at σ_j) and the same losses.
