// The EDM teacher (Karras et al. 2022) at ImageNet-64 scale: EDM's ADM UNet ("DhariwalUNet"),
// its preconditioning, training loss, samplers and checkpoints. Written from
// docs/ARCHITECTURE-ADM.md and docs/METHOD.md §1; parameter names and shapes equal EDM's.
//
//   Config.swift      UNetConfig and presets (imagenet64, small16, cpu64Tiny, cpu64Small)
//   Layout.swift      the block structure, EDM's state-dict table, the FLOP count
//   Parameters.swift  ParameterStore: named Variable leaves, initialisation
//   UNetBlock.swift   the residual block (scale/shift, resampling, attention), dropout masks
//   UNet.swift        F(x, c_noise, y), the encoder features for DMD2's GAN head
//   Precond.swift     Denoiser: D(x; σ, y) = c_skip·x + c_out·F(c_in·x, c_noise, y), the score
//   Loss.swift        EDMLoss: log-normal σ, λ(σ) weighting, label dropout
//   Samplers.swift    Karras time steps, Euler / Heun, stochastic churn, guidance
//   Checkpoint.swift  safetensors with EDM's keys, strict loading
