// DMD2Metrics: how good are generated images, measured offline (docs/METRICS.md).
//
//   InceptionV3FID         the TF-2015 Inception-v3 FID network, read from a TorchScript zip
//   TorchScriptArchive     that zip's tensors without torch (Pickle.swift: the pickle subset)
//   InceptionOps           the inference layers it needs beyond DMD2Ops
//   FeatureStatistics      μ and Σ of features in Double; EDM's reference .npz (mu, sigma)
//   frechetDistance        FID from two FeatureStatistics (LAPACK's symmetric eigen-solver)
//   kernelInceptionDistance  KID, unbiased MMD² with a cubic kernel over random subsets
//   precisionRecall        k-NN manifold precision and recall (Kynkäänniemi et al. 2019)
