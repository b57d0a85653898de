// Tensor<T>: an N-dimensional, contiguous, row-major array (images are NCHW).
//
// A Tensor is a value: `scalars` is a Swift array, so copies are cheap until one side writes
// (copy-on-write). There are no strides or views — a permute or slice makes a new contiguous
// tensor — which keeps every kernel a plain loop over memory and keeps the CPU reference
// readable. Differentiable computation wraps Tensors in `Variable` (Autograd/Variable.swift).

public struct Tensor<T: TensorScalar>: Sendable, Equatable {
    /// Extent of each dimension, outermost first (e.g. [N, C, H, W]).
    public let shape: [Int]
    /// The elements in row-major order; `scalars.count == shape.product`.
    public var scalars: [T]

    /// A tensor with the given shape and elements. Traps when the counts disagree, naming both.
    @inlinable
    public init(shape: [Int], scalars: [T]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "Tensor: negative dimension in shape \(shape)")
        precondition(shape.elementCount == scalars.count,
                     "Tensor: shape \(shape) holds \(shape.elementCount) elements, got \(scalars.count)")
        self.shape = shape
        self.scalars = scalars
    }

    /// A tensor filled with `value`.
    @inlinable
    public init(repeating value: T, shape: [Int]) {
        self.init(shape: shape, scalars: [T](repeating: value, count: shape.elementCount))
    }

    /// A 0-dimensional tensor holding one value.
    @inlinable
    public init(scalar: T) { self.init(shape: [], scalars: [scalar]) }

    /// A tensor whose storage is filled by `body`, which must initialise every element.
    /// Used by kernels to avoid zero-filling memory they overwrite anyway.
    @inlinable
    public init(shape: [Int], unsafeUninitialized body: (UnsafeMutableBufferPointer<T>) -> Void) {
        let n = shape.elementCount
        self.shape = shape
        self.scalars = [T](unsafeUninitializedCapacity: n) { buffer, count in
            body(buffer)
            count = n
        }
    }

    @inlinable public static func zeros(_ shape: [Int]) -> Tensor { Tensor(repeating: 0, shape: shape) }
    @inlinable public static func ones(_ shape: [Int]) -> Tensor { Tensor(repeating: 1, shape: shape) }

    /// Number of elements.
    @inlinable public var count: Int { scalars.count }
    /// Number of dimensions.
    @inlinable public var rank: Int { shape.count }

    /// The single element of a one-element tensor.
    @inlinable public var scalar: T {
        precondition(count == 1, "Tensor.scalar: tensor of shape \(shape) has \(count) elements")
        return scalars[0]
    }

    /// Same elements, new shape (same element count; one dimension may be -1 and is inferred).
    @inlinable
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: resolveShape(newShape, count: count, from: shape), scalars: scalars)
    }

    /// Element at a multi-index (slow: for tests and debugging, not kernels).
    @inlinable
    public subscript(_ index: Int...) -> T {
        get { scalars[flatIndex(index)] }
        set { scalars[flatIndex(index)] = newValue }
    }

    @inlinable
    func flatIndex(_ index: [Int]) -> Int {
        precondition(index.count == shape.count, "Tensor: index \(index) for shape \(shape)")
        var flat = 0
        for (i, n) in Swift.zip(index, shape) {
            precondition(i >= 0 && i < n, "Tensor: index \(index) out of range for shape \(shape)")
            flat = flat * n + i
        }
        return flat
    }

    /// Convert element type (Float ↔ Double), through Double.
    @inlinable
    public func converted<U: TensorScalar>(to: U.Type = U.self) -> Tensor<U> {
        Tensor<U>(shape: shape, scalars: scalars.map { U(Double($0)) })
    }

    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<T>) throws -> R) rethrows -> R {
        try scalars.withUnsafeBufferPointer(body)
    }

    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(
        _ body: (inout UnsafeMutableBufferPointer<T>) throws -> R
    ) rethrows -> R {
        try scalars.withUnsafeMutableBufferPointer(body)
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let shown = scalars.prefix(8).map { "\($0)" }.joined(separator: ", ")
        return "Tensor<\(T.self)>(shape: \(shape), [\(shown)\(count > 8 ? ", …" : "")])"
    }
}

extension Array where Element == Int {
    /// Product of the extents: the element count of a shape ([] → 1).
    @inlinable public var elementCount: Int { reduce(1, *) }
}

/// Resolve a shape that may contain one -1 against an element count.
@inlinable
func resolveShape(_ newShape: [Int], count: Int, from old: [Int]) -> [Int] {
    var shape = newShape
    let unknown = shape.indices.filter { shape[$0] == -1 }
    precondition(unknown.count <= 1, "reshape \(old) → \(newShape): at most one -1")
    if let u = unknown.first {
        let known = shape.enumerated().filter { $0.offset != u }.map(\.element).elementCount
        precondition(known > 0 && count % known == 0, "reshape \(old) → \(newShape): \(count) elements do not divide")
        shape[u] = count / known
    }
    precondition(shape.elementCount == count,
                 "reshape \(old) → \(newShape): \(count) elements cannot take shape \(shape)")
    return shape
}
