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
    ]
}
