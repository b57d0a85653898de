// The list of every differentiable op swift-dmd2 provides.
//
// Each name here must have a gradient check in Tests/DMD2OpsTests (a test walks this list and
// fails for any op without one). Add the op's name here when you add the op.

public enum OpCatalog {
    public static let all: [String] = [
        // Elementwise (Elementwise.swift)
        "add", "sub", "mul", "div", "addScalar", "mulScalar",
        "neg", "exp", "log", "sqrt", "square", "abs",
        "sigmoid", "silu", "softplus", "tanh",
        // Reductions (Reduce.swift)
        "sum", "mean",
        // Linear algebra (Matmul.swift)
        "matmul", "linear",
        // Convolution and resampling (Conv2D.swift, Resample.swift)
        "conv2d", "avgPool2x2", "upsampleNearest2x",
        // Normalisation and attention (GroupNorm.swift, Softmax.swift, Attention.swift)
        "groupNorm", "groupNormSiLU", "softmax", "attention",
        // Shapes and channels (Shape.swift, Channels.swift)
        "reshape", "permute", "concat", "slice",
        // Embedding, dropout, numerics (Embedding.swift, Dropout.swift, NanToNum.swift)
        "sinusoidalEmbedding", "dropout", "nanToNum",
        // Losses (Losses.swift)
        "mseLoss", "weightedMSELoss", "softplusLoss", "softmaxCrossEntropy",
    ]
}
