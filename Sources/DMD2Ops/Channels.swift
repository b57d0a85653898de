// Channel ops: concat, slice and split along one axis (ADM joins the decoder input with its
// skip connection on the channel axis, axis 1, decoder activation first).
//
// Viewing a tensor as [outer, n, inner] around the axis (outer = product of the extents before
// it, inner = product after it), each of the `outer` rows holds n·inner contiguous elements,
// so every op here is one strided row copy (`Compute.backend.copyRows`) per operand:
// concat: y[o, off_i + k, :] = x_i[o, k, :] with off_i = n_0 + … + n_{i−1};
//         dX_i = dY[:, off_i ..< off_i + n_i, :].
// slice:  y[o, k, :] = x[o, a + k, :] for the range a ..< b;
//         dX = dY written back into zeros at a ..< b.
// split:  slices whose ranges tile the axis; concat(split(x)) == x.
import DMD2Core

/// `xs` joined along `axis` (PyTorch's `torch.cat(xs, dim: axis)`). Every input has the same
/// rank and the same extents except along `axis`.
///
/// Linear in each input; the backward pass slices each input's block out of the gradient.
public func concat<T>(_ xs: [Variable<T>], axis: Int) -> Variable<T> {
    precondition(!xs.isEmpty, "concat: no inputs")
    let shapes = xs.map(\.shape)
    let first = shapes[0]
    precondition(axis >= 0 && axis < first.count, "concat: axis \(axis) out of range for shapes \(shapes)")
    for s in shapes {
        precondition(s.count == first.count && s.indices.allSatisfy { $0 == axis || s[$0] == first[$0] },
                     "concat along axis \(axis): shapes \(shapes) differ off that axis")
    }
    let extents = shapes.map { $0[axis] }
    let y = concatTensors(xs.map(\.value), axis: axis)
    return Variable.record("concat", y, parents: xs) { dY, needed in
        var offset = 0
        return extents.enumerated().map { i, n in
            defer { offset += n }
            return needed[i] ? sliceTensor(dY, axis: axis, range: offset ..< offset + n) : nil
        }
    }
}

/// The elements of `x` whose index along `axis` lies in `range` (PyTorch's
/// `x.narrow(axis, range.lowerBound, range.count)`), as a new contiguous tensor.
///
/// Linear; the backward pass places the gradient into zeros at `range`.
public func slice<T>(_ x: Variable<T>, axis: Int, range: Range<Int>) -> Variable<T> {
    precondition(axis >= 0 && axis < x.value.rank, "slice: axis \(axis) out of range for shape \(x.shape)")
    precondition(range.lowerBound >= 0 && range.upperBound <= x.shape[axis],
                 "slice: range \(range) out of bounds for axis \(axis) of shape \(x.shape)")
    let xShape = x.shape
    return Variable.record("slice", sliceTensor(x.value, axis: axis, range: range), parents: [x]) { dY, _ in
        var dX = Tensor<T>.zeros(xShape)
        dX.withUnsafeMutableBufferPointer { copyBlock(dY, axis: axis, into: $0, extent: xShape[axis], at: range.lowerBound) }
        return [dX]
    }
}

/// `x` cut along `axis` into consecutive pieces of the given extents (PyTorch's
/// `torch.split(x, sizes, dim: axis)`); the sizes must add up to `x.shape[axis]`.
///
/// Split is not a separate op on the tape: each piece is a `slice`, so gradients flowing back
/// from several pieces add up in `x`.
public func split<T>(_ x: Variable<T>, sizes: [Int], axis: Int) -> [Variable<T>] {
    precondition(axis >= 0 && axis < x.value.rank, "split: axis \(axis) out of range for shape \(x.shape)")
    precondition(sizes.allSatisfy { $0 >= 0 } && sizes.reduce(0, +) == x.shape[axis],
                 "split: sizes \(sizes) do not add up to extent \(x.shape[axis]) of axis \(axis) in shape \(x.shape)")
    var start = 0
    return sizes.map { n in
        defer { start += n }
        return slice(x, axis: axis, range: start ..< start + n)
    }
}

// MARK: Tensor kernels (shared with other ops' forward and backward passes)

/// The tensors joined along `axis` (shapes already checked to agree off that axis).
func concatTensors<T>(_ xs: [Tensor<T>], axis: Int) -> Tensor<T> {
    var shape = xs[0].shape
    shape[axis] = xs.map { $0.shape[axis] }.reduce(0, +)
    return Tensor(shape: shape) { y in          // the blocks tile y, so every element is written
        var offset = 0
        for x in xs {
            copyBlock(x, axis: axis, into: y, extent: shape[axis], at: offset)
            offset += x.shape[axis]
        }
    }
}

/// The block of `x` at `range` along `axis`.
func sliceTensor<T>(_ x: Tensor<T>, axis: Int, range: Range<Int>) -> Tensor<T> {
    let (outer, n, inner) = axisView(x.shape, axis: axis)
    var shape = x.shape
    shape[axis] = range.count
    return Tensor(shape: shape) { y in
        x.withUnsafeBufferPointer { xp in
            Compute.backend.copyRows(xp, xStride: n * inner, xOffset: range.lowerBound * inner,
                                     y, yStride: range.count * inner, yOffset: 0,
                                     rows: outer, count: range.count * inner)
        }
    }
}

/// Write all of `x` into the buffer `y` (x's shape with `extent` along `axis`) at position
/// `offset` along `axis`.
func copyBlock<T>(_ x: Tensor<T>, axis: Int, into y: UnsafeMutableBufferPointer<T>, extent: Int, at offset: Int) {
    let (outer, n, inner) = axisView(x.shape, axis: axis)
    x.withUnsafeBufferPointer { xp in
        Compute.backend.copyRows(xp, xStride: n * inner, xOffset: 0,
                                 y, yStride: extent * inner, yOffset: offset * inner,
                                 rows: outer, count: n * inner)
    }
}

/// A shape seen as [outer, n, inner] around `axis`.
func axisView(_ shape: [Int], axis: Int) -> (outer: Int, n: Int, inner: Int) {
    (Array(shape[..<axis]).elementCount, shape[axis], Array(shape[(axis + 1)...]).elementCount)
}
