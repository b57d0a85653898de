// Tensors to and from safetensors records (checkpoints, fixtures, debug states).
import SafeTensors

extension Tensor {
    /// A tensor from a safetensors record, converting F16/BF16/F32/F64 to T. An integer or BOOL
    /// record is refused: weights and activations are stored as floats, and an F32 tensor
    /// relabelled I32 (same byte length) would otherwise load as garbage values.
    public init(_ record: SafeTensor) throws {
        guard record.dtype.isFloatingPoint else {
            throw SafeTensorsError(.unsupportedConversion,
                                   "dtype \(record.dtype.rawValue) is not a floating-point type; a \(T.self) tensor is stored as F32, F64, F16 or BF16")
        }
        let values: [T]
        if T.self == Float.self {
            values = try record.floats() as! [T]
        } else if T.self == Double.self {
            values = try record.doubles() as! [T]
        } else {
            values = try record.doubles().map { T($0) }
        }
        self.init(shape: record.shape, scalars: values)
    }

    /// The safetensors record of this tensor (F32 for Float, F64 for Double).
    public func safeTensor() -> SafeTensor {
        // The initialisers only throw when the element count disagrees with the shape,
        // which a Tensor rules out.
        if let floats = scalars as? [Float] { return try! SafeTensor(floats, shape: shape) }
        return try! SafeTensor(scalars.map { Double($0) }, shape: shape)
    }
}

extension SafeTensorsFile {
    /// The named tensor, converted to T; the error names the key when it is missing.
    public func tensor<T: TensorScalar>(_ name: String, as: T.Type = T.self) throws -> Tensor<T> {
        let record = try tensor(name)
        do { return try Tensor<T>(record) } catch var error as SafeTensorsError {
            error.message = "tensor '\(name)': \(error.message)"
            throw error
        }
    }
}
