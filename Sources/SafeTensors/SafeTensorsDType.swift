// SafeTensorsDType.swift — the element types a safetensors file can declare for a tensor,
// spelled exactly as they appear in the header's "dtype" field, with their sizes in bytes.

/// The element type of a tensor in a safetensors file.
///
/// The raw value is the header spelling (`"F32"`, `"BF16"`, ...). Every type is stored
/// little-endian; `BOOL` is one byte per element (0 = false, anything else = true).
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    /// IEEE 754 binary64.
    case F64
    /// IEEE 754 binary32.
    case F32
    /// IEEE 754 binary16 (half precision).
    case F16
    /// bfloat16: the top 16 bits of a binary32.
    case BF16
    /// Two's-complement signed integers of 64, 32, 16 and 8 bits.
    case I64, I32, I16, I8
    /// Unsigned 8-bit integer.
    case U8
    /// Boolean, one byte per element.
    case BOOL

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .F64, .I64: 8
        case .F32, .I32: 4
        case .F16, .BF16, .I16: 2
        case .I8, .U8, .BOOL: 1
        }
    }

    /// True for the floating-point types (F64, F32, F16, BF16).
    public var isFloatingPoint: Bool {
        switch self {
        case .F64, .F32, .F16, .BF16: true
        case .I64, .I32, .I16, .I8, .U8, .BOOL: false
        }
    }
}

/// The number of elements of `shape` (1 for the scalar shape `[]`), or nil when a dimension is
/// negative or the product does not fit in `Int`.
func checkedElementCount(_ shape: [Int]) -> Int? {
    var count = 1
    for dimension in shape {
        guard dimension >= 0 else { return nil }
        let (product, overflow) = count.multipliedReportingOverflow(by: dimension)
        guard !overflow else { return nil }
        count = product
    }
    return count
}

/// `[2, 3]` — a shape as it is written in error messages.
func describeShape(_ shape: [Int]) -> String {
    "[" + shape.map(String.init).joined(separator: ", ") + "]"
}
