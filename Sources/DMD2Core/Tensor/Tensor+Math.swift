// Plain (non-differentiable) Tensor arithmetic, through the current backend.
//
// Used by op backward passes, optimisers and tests. Differentiable versions of the same maths
// live in DMD2Ops and take Variables.

extension Tensor {
    /// Apply a unary primitive.
    @inlinable
    public func map(_ op: UnaryOp) -> Tensor {
        Tensor(shape: shape) { y in
            withUnsafeBufferPointer { x in Compute.backend.unary(op, x, y) }
        }
    }

    /// Apply a binary primitive to two tensors of the same shape.
    @inlinable
    public func zip(_ other: Tensor, _ op: BinaryOp) -> Tensor {
        precondition(shape == other.shape, "\(op): shapes \(shape) and \(other.shape) differ")
        return Tensor(shape: shape) { y in
            withUnsafeBufferPointer { a in
                other.withUnsafeBufferPointer { b in Compute.backend.binary(op, a, b, y) }
            }
        }
    }

    /// scale·self + shift.
    @inlinable
    public func affine(scale: T, shift: T = 0) -> Tensor {
        Tensor(shape: shape) { y in
            withUnsafeBufferPointer { x in Compute.backend.affine(x, scale: scale, shift: shift, y) }
        }
    }

    @inlinable public static func + (a: Tensor, b: Tensor) -> Tensor { a.zip(b, .add) }
    @inlinable public static func - (a: Tensor, b: Tensor) -> Tensor { a.zip(b, .sub) }
    @inlinable public static func * (a: Tensor, b: Tensor) -> Tensor { a.zip(b, .mul) }
    @inlinable public static func / (a: Tensor, b: Tensor) -> Tensor { a.zip(b, .div) }
    @inlinable public static func * (a: Tensor, s: T) -> Tensor { a.affine(scale: s) }
    @inlinable public static func * (s: T, a: Tensor) -> Tensor { a.affine(scale: s) }
    @inlinable public static func + (a: Tensor, s: T) -> Tensor { a.affine(scale: 1, shift: s) }
    @inlinable public static prefix func - (a: Tensor) -> Tensor { a.affine(scale: -1) }

    /// self += other (same shape), in place.
    @inlinable
    public static func += (a: inout Tensor, b: Tensor) { a = a + b }

    /// Σ of all elements.
    @inlinable public func sum() -> T { withUnsafeBufferPointer { Compute.backend.sum($0) } }
    /// Mean of all elements.
    @inlinable public func mean() -> T { count == 0 ? 0 : sum() / T(count) }
    /// Σ self·other over all elements.
    @inlinable
    public func dot(_ other: Tensor) -> T {
        precondition(count == other.count, "dot: \(count) vs \(other.count) elements")
        return withUnsafeBufferPointer { a in other.withUnsafeBufferPointer { b in Compute.backend.dot(a, b) } }
    }
    /// Euclidean norm ‖self‖₂.
    @inlinable public func norm() -> T { dot(self).squareRoot() }

    /// Largest |element| (0 for an empty tensor).
    @inlinable public func maxAbs() -> T { scalars.reduce(0) { Swift.max($0, Swift.abs($1)) } }

    /// Sum over one axis (the axis is removed unless `keepingDims`).
    public func sum(axis: Int, keepingDims: Bool = false) -> Tensor {
        precondition(axis >= 0 && axis < rank, "sum(axis:): axis \(axis) out of range for shape \(shape)")
        let outer = shape[..<axis].reduce(1, *), reduced = shape[axis], inner = shape[(axis + 1)...].reduce(1, *)
        var outShape = shape
        if keepingDims { outShape[axis] = 1 } else { outShape.remove(at: axis) }
        return Tensor(shape: outShape) { y in
            withUnsafeBufferPointer { x in
                Compute.backend.sumAxis(x, outer: outer, reduced: reduced, inner: inner, y)
            }
        }
    }

    /// Sum over broadcast axes so the result has `target`'s shape (the VJP of broadcasting).
    /// `target` must be broadcastable to `shape` (after left-padding it with 1s).
    public func summed(toShape target: [Int]) -> Tensor {
        if shape == target { return self }
        precondition(target.count <= rank, "summed(toShape:): \(target) has more axes than \(shape)")
        let padded = [Int](repeating: 1, count: rank - target.count) + target
        var result = self
        for axis in 0..<rank where padded[axis] != shape[axis] {
            precondition(padded[axis] == 1, "summed(toShape:): cannot reduce \(shape) to \(target)")
            result = result.sum(axis: axis, keepingDims: true)
        }
        return result.reshaped(target)
    }

    /// Broadcast to `outShape` (numpy rules, leading axes added as needed).
    public func broadcast(to outShape: [Int]) -> Tensor {
        if shape == outShape { return self }
        precondition(rank <= outShape.count, "broadcast: \(shape) has more axes than \(outShape)")
        let padded = [Int](repeating: 1, count: outShape.count - rank) + shape
        return Tensor(shape: outShape) { y in
            withUnsafeBufferPointer { x in Compute.backend.broadcast(x, shape: padded, to: outShape, y) }
        }
    }

    /// Axes reordered: the result's axis i is self's axis `permutation[i]`.
    public func permuted(_ permutation: [Int]) -> Tensor {
        Tensor(shape: permutation.map { shape[$0] }) { y in
            withUnsafeBufferPointer { x in Compute.backend.permute(x, shape: shape, permutation: permutation, y) }
        }
    }

    /// Whether every element is finite. (Training checks every gradient with this each step:
    /// one SIMD pass, x·0 summed — NaN exactly when some x is NaN or ±∞ — specialised for Float
    /// and Double; `scalars.allSatisfy(\.isFinite)` ran a key-path projection per element.)
    public var isFinite: Bool {
        withUnsafeBufferPointer { x in
            if T.self == Float.self { return allFinite(UnsafeRawBufferPointer(x).assumingMemoryBound(to: Float.self)) }
            if T.self == Double.self { return allFinite(UnsafeRawBufferPointer(x).assumingMemoryBound(to: Double.self)) }
            return allFinite(x)
        }
    }
}

/// Whether no element of `x` is NaN or ±∞, in chunks on the pool.
func allFinite<S: TensorScalar>(_ x: UnsafeBufferPointer<S>) -> Bool {
    guard let base = x.baseAddress else { return true }
    let pointer = UncheckedSendable(base)
    let chunks = parallelChunkCount(x.count, minChunk: 1 << 16)
    var finite = [Bool](repeating: true, count: chunks)
    finite.withUnsafeMutableBufferPointer { out in
        let results = UncheckedSendable(out.baseAddress!)
        parallelFor(chunks) { c in
            let range = chunkRange(c, of: chunks, total: x.count), p = pointer.value
            var acc = SIMD8<S>(repeating: 0)
            var i = range.lowerBound
            while i + 8 <= range.upperBound {
                acc += UnsafeRawPointer(p + i).loadUnaligned(as: SIMD8<S>.self) * 0
                i += 8
            }
            var tail: S = 0
            while i < range.upperBound { tail += p[i] * 0; i += 1 }
            results.value[c] = acc.sum().isFinite && tail.isFinite
        }
    }
    return !finite.contains(false)
}

/// The shape two operands broadcast to (numpy rules), or nil if they do not.
public func broadcastShape(_ a: [Int], _ b: [Int]) -> [Int]? {
    let rank = Swift.max(a.count, b.count)
    let pa = [Int](repeating: 1, count: rank - a.count) + a
    let pb = [Int](repeating: 1, count: rank - b.count) + b
    var out: [Int] = []
    for (x, y) in Swift.zip(pa, pb) {
        if x == y || y == 1 { out.append(x) } else if x == 1 { out.append(y) } else { return nil }
    }
    return out
}
