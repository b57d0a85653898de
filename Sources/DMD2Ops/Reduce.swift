// Sum and mean over axes.
//
// Forward: y = Σ over the given axes (kept as size-1 axes when `keepingDims`). Backward:
// the upstream gradient broadcast back over the reduced axes (÷ count for the mean).
import DMD2Core

/// Σ over `axes` (all axes when nil → a scalar, shape []).
public func sum<T>(_ x: Variable<T>, axes: [Int]? = nil, keepingDims: Bool = false) -> Variable<T> {
    let (y, keptShape) = reduceSum(x.value, axes: axes)
    let outShape = keepingDims ? keptShape : squeezedShape(keptShape, axes: axes ?? Array(0..<x.value.rank))
    let xShape = x.shape
    return Variable.record("sum", y.reshaped(outShape), parents: [x]) { g, _ in
        [g.reshaped(keptShape).broadcast(to: xShape)]
    }
}

/// Mean over `axes` (all axes when nil).
public func mean<T>(_ x: Variable<T>, axes: [Int]? = nil, keepingDims: Bool = false) -> Variable<T> {
    let (y, keptShape) = reduceSum(x.value, axes: axes)
    let count = T(x.value.count / Swift.max(1, keptShape.elementCount))
    let outShape = keepingDims ? keptShape : squeezedShape(keptShape, axes: axes ?? Array(0..<x.value.rank))
    let xShape = x.shape
    return Variable.record("mean", (y * (1 / count)).reshaped(outShape), parents: [x]) { g, _ in
        [g.reshaped(keptShape).broadcast(to: xShape) * (1 / count)]
    }
}

/// Σ over axes with the reduced axes kept as 1; returns the tensor and that kept shape.
func reduceSum<T>(_ x: Tensor<T>, axes: [Int]?) -> (Tensor<T>, [Int]) {
    let list = axes ?? Array(0..<x.rank)
    precondition(list.allSatisfy { $0 >= 0 && $0 < x.rank } && Set(list).count == list.count,
                 "sum/mean: axes \(list) invalid for shape \(x.shape)")
    if axes == nil || list.count == x.rank {
        return (Tensor(shape: [Int](repeating: 1, count: x.rank), scalars: [x.sum()]),
                [Int](repeating: 1, count: x.rank))
    }
    var y = x
    for axis in list.sorted() { y = y.sum(axis: axis, keepingDims: true) }
    return (y, y.shape)
}

func squeezedShape(_ kept: [Int], axes: [Int]) -> [Int] {
    kept.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
}
