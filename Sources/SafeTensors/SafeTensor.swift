// SafeTensor.swift — one named tensor's raw record (dtype, shape, little-endian row-major bytes)
// and the conversions between those bytes and Swift arrays of Float, Double and Int64.
// F32/F64/I64 move with one bulk copy on little-endian hosts; F16/BF16 go through the exact
// bit-level conversions in HalfPrecision.swift.

/// One tensor as stored in a safetensors file: an element type, a shape, and the raw bytes.
///
/// `bytes` holds `elementCount × dtype.byteSize` bytes, little-endian, row-major (the last
/// dimension varies fastest). The shape `[]` is a scalar (one element); a shape containing 0
/// has no elements and no bytes.
///
/// The throwing initialisers guarantee that the three properties agree. They are `var`s so a
/// record can be edited; `SafeTensorsFile.serialized()` and the conversion methods re-check
/// them and throw if an edit left them inconsistent.
public struct SafeTensor: Sendable, Equatable {
    /// Element type.
    public var dtype: SafeTensorsDType
    /// Dimensions, outermost first. `[]` is a scalar.
    public var shape: [Int]
    /// The elements' little-endian bytes in row-major order.
    public var bytes: [UInt8]

    /// Number of elements: the product of `shape` (1 for a scalar). Returns 0 if `shape` has been
    /// edited into something invalid (a negative dimension, or a product that overflows `Int`).
    public var elementCount: Int { checkedElementCount(shape) ?? 0 }

    /// Wraps existing bytes. Throws unless every dimension is non-negative and
    /// `bytes.count == product(shape) × dtype.byteSize`.
    public init(dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) throws {
        self.init(unchecked: dtype, shape: shape, bytes: bytes)
        try validate()
    }

    /// An F32 tensor holding `values` (row-major).
    ///
    /// With bare literals Swift picks the `[Double]` overload (F64) for `[0.5, 1]` and reports
    /// integer-only literals as ambiguous; write `[0.5, 1] as [Float]` to get F32.
    public init(_ values: [Float], shape: [Int]) throws {
        try Self.checkValueCount(values.count, shape: shape)
        #if _endian(little)
        self.init(unchecked: .F32, shape: shape, bytes: Self.rawBytes(of: values))
        #else
        self.init(unchecked: .F32, shape: shape, bytes: Self.encode(values, as: UInt32.self, \.bitPattern))
        #endif
    }

    /// An F64 tensor holding `values` (row-major).
    public init(_ values: [Double], shape: [Int]) throws {
        try Self.checkValueCount(values.count, shape: shape)
        #if _endian(little)
        self.init(unchecked: .F64, shape: shape, bytes: Self.rawBytes(of: values))
        #else
        self.init(unchecked: .F64, shape: shape, bytes: Self.encode(values, as: UInt64.self, \.bitPattern))
        #endif
    }

    /// An I64 tensor holding `values` (row-major).
    public init(_ values: [Int64], shape: [Int]) throws {
        try Self.checkValueCount(values.count, shape: shape)
        #if _endian(little)
        self.init(unchecked: .I64, shape: shape, bytes: Self.rawBytes(of: values))
        #else
        self.init(unchecked: .I64, shape: shape, bytes: Self.encode(values, as: Int64.self) { $0 })
        #endif
    }

    /// An F16 tensor: each value rounded to the nearest binary16 (ties to even; beyond ±65504
    /// rounds to ±infinity; NaN stays NaN).
    public init(float16 values: [Float], shape: [Int]) throws {
        try Self.checkValueCount(values.count, shape: shape)
        self.init(unchecked: .F16, shape: shape, bytes: Self.encode(values, as: UInt16.self, HalfPrecision.halfBits(from:)))
    }

    /// A BF16 tensor: each value rounded to the nearest bfloat16 (ties to even; NaN stays NaN).
    public init(bfloat16 values: [Float], shape: [Int]) throws {
        try Self.checkValueCount(values.count, shape: shape)
        self.init(unchecked: .BF16, shape: shape, bytes: Self.encode(values, as: UInt16.self, HalfPrecision.bfloat16Bits(from:)))
    }

    /// Memberwise, without checks: for callers that have already validated (the file parser).
    init(unchecked dtype: SafeTensorsDType, shape: [Int], bytes: [UInt8]) {
        self.dtype = dtype
        self.shape = shape
        self.bytes = bytes
    }

    // MARK: reading values

    /// The elements as Float. F32 is copied exactly; F16 and BF16 widen exactly; F64 and the
    /// integer types round to the nearest Float; BOOL gives 0 or 1.
    public func floats() throws -> [Float] {
        try validate()
        switch dtype {
        case .F32:
            #if _endian(little)
            return reinterpretedBytes(as: Float.self)
            #else
            return decode(UInt32.self, Float.init(bitPattern:))
            #endif
        case .F64: return decode(UInt64.self) { Float(Double(bitPattern: $0)) }
        case .F16: return decode(UInt16.self, HalfPrecision.float(fromHalfBits:))
        case .BF16: return decode(UInt16.self, HalfPrecision.float(fromBFloat16Bits:))
        case .I64: return decode(Int64.self, Float.init)
        case .I32: return decode(Int32.self, Float.init)
        case .I16: return decode(Int16.self, Float.init)
        case .I8: return decode(Int8.self, Float.init)
        case .U8: return decode(UInt8.self, Float.init)
        case .BOOL: return decode(UInt8.self) { $0 == 0 ? 0 : 1 }
        }
    }

    /// The elements as Double. F64 is copied exactly; F32, F16, BF16 and integers up to 32 bits
    /// convert exactly; I64 rounds to the nearest Double beyond ±2^53; BOOL gives 0 or 1.
    public func doubles() throws -> [Double] {
        try validate()
        switch dtype {
        case .F64:
            #if _endian(little)
            return reinterpretedBytes(as: Double.self)
            #else
            return decode(UInt64.self, Double.init(bitPattern:))
            #endif
        case .F32: return decode(UInt32.self) { Double(Float(bitPattern: $0)) }
        case .F16: return decode(UInt16.self) { Double(HalfPrecision.float(fromHalfBits: $0)) }
        case .BF16: return decode(UInt16.self) { Double(HalfPrecision.float(fromBFloat16Bits: $0)) }
        case .I64: return decode(Int64.self, Double.init)
        case .I32: return decode(Int32.self, Double.init)
        case .I16: return decode(Int16.self, Double.init)
        case .I8: return decode(Int8.self, Double.init)
        case .U8: return decode(UInt8.self, Double.init)
        case .BOOL: return decode(UInt8.self) { $0 == 0 ? 0 : 1 }
        }
    }

    /// The elements as Int64, from any integer dtype (BOOL gives 0 or 1). Throws for
    /// floating-point dtypes: use `floats()` or `doubles()` for those.
    public func int64s() throws -> [Int64] {
        try validate()
        switch dtype {
        case .I64:
            #if _endian(little)
            return reinterpretedBytes(as: Int64.self)
            #else
            return decode(Int64.self) { $0 }
            #endif
        case .I32: return decode(Int32.self, Int64.init)
        case .I16: return decode(Int16.self, Int64.init)
        case .I8: return decode(Int8.self, Int64.init)
        case .U8: return decode(UInt8.self, Int64.init)
        case .BOOL: return decode(UInt8.self) { $0 == 0 ? 0 : 1 }
        case .F64, .F32, .F16, .BF16:
            throw SafeTensorsError(.unsupportedConversion,
                                   "cannot read a \(dtype.rawValue) tensor as Int64 values; use floats() or doubles()")
        }
    }

    // MARK: validation

    /// Throws unless the shape is valid and `bytes` has exactly the size dtype × shape requires.
    /// `name`, when given, is put in the message.
    func validate(name: String? = nil) throws {
        let subject = name.map { "tensor '\($0)'" } ?? "\(dtype.rawValue) tensor"
        if let dimension = shape.first(where: { $0 < 0 }) {
            throw SafeTensorsError(.invalidTensor,
                                   "\(subject): shape \(describeShape(shape)) has a negative dimension (\(dimension))")
        }
        guard let count = checkedElementCount(shape),
              case let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize), !overflow
        else {
            throw SafeTensorsError(.invalidTensor,
                                   "\(subject): shape \(describeShape(shape)) has more elements than Int can count")
        }
        guard bytes.count == byteCount else {
            throw SafeTensorsError(.invalidTensor,
                                   "\(subject): dtype \(dtype.rawValue) with shape \(describeShape(shape)) needs \(byteCount) bytes but has \(bytes.count)")
        }
    }

    private static func checkValueCount(_ valueCount: Int, shape: [Int]) throws {
        if let dimension = shape.first(where: { $0 < 0 }) {
            throw SafeTensorsError(.invalidTensor,
                                   "shape \(describeShape(shape)) has a negative dimension (\(dimension))")
        }
        guard let count = checkedElementCount(shape) else {
            throw SafeTensorsError(.invalidTensor, "shape \(describeShape(shape)) has more elements than Int can count")
        }
        guard count == valueCount else {
            throw SafeTensorsError(.invalidTensor,
                                   "shape \(describeShape(shape)) holds \(count) elements but \(valueCount) values were given")
        }
    }

    // MARK: byte movement

    /// The in-memory bytes of `values`: one bulk copy (the stored form on little-endian hosts).
    private static func rawBytes<T: BitwiseCopyable>(of values: [T]) -> [UInt8] {
        values.withUnsafeBytes { Array($0) }
    }

    /// Stores `transform(value)` for each value as a little-endian `Raw`, in one pass.
    private static func encode<Value, Raw: FixedWidthInteger & BitwiseCopyable>(
        _ values: [Value], as _: Raw.Type, _ transform: (Value) -> Raw
    ) -> [UInt8] {
        let size = MemoryLayout<Raw>.size
        return [UInt8](unsafeUninitializedCapacity: values.count * size) { buffer, initialized in
            let out = UnsafeMutableRawBufferPointer(buffer)
            for (index, value) in values.enumerated() {
                out.storeBytes(of: transform(value).littleEndian, toByteOffset: index * size, as: Raw.self)
            }
            initialized = values.count * size
        }
    }

    /// `bytes` copied in one block into an array of `T`. Host byte order, so this is the stored
    /// value only on little-endian hosts (or for single-byte types).
    private func reinterpretedBytes<T: BitwiseCopyable>(as _: T.Type) -> [T] {
        let count = bytes.count / MemoryLayout<T>.stride
        return [T](unsafeUninitializedCapacity: count) { buffer, initialized in
            bytes.withUnsafeBytes { source in
                UnsafeMutableRawBufferPointer(buffer).copyMemory(
                    from: UnsafeRawBufferPointer(rebasing: source[..<(count * MemoryLayout<T>.stride)]))
            }
            initialized = count
        }
    }

    /// Reads `bytes` as little-endian `Raw` elements and converts each with `transform`, in one
    /// pass straight into the result (no intermediate array).
    private func decode<Raw: FixedWidthInteger & BitwiseCopyable, Out>(
        _: Raw.Type, _ transform: (Raw) -> Out
    ) -> [Out] {
        let size = MemoryLayout<Raw>.size
        let count = bytes.count / size
        return bytes.withUnsafeBytes { source in
            [Out](unsafeUninitializedCapacity: count) { buffer, initialized in
                for index in 0..<count {
                    let raw = Raw(littleEndian: source.loadUnaligned(fromByteOffset: index * size, as: Raw.self))
                    (buffer.baseAddress! + index).initialize(to: transform(raw))
                }
                initialized = count
            }
        }
    }
}
