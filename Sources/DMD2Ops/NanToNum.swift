// nanToNum: replace non-finite values by finite ones (torch.nan_to_num), e.g. to keep one bad
// sample from poisoning a loss or a gradient.
//
//   y = nan where x is NaN, posInf where x = +∞, negInf where x = −∞, else x;
//   dX = dY·[x finite]  (0 where a value was replaced: a constant does not depend on x).
// Like PyTorch's backward (grad·isfinite(x)), a NaN in dY at a replaced position stays NaN.
import DMD2Core

/// `x` with NaN replaced by `nan`, +∞ by `posInf` and −∞ by `negInf`
/// (defaults: 0, `T.greatestFiniteMagnitude`, `−T.greatestFiniteMagnitude`, as in PyTorch).
///
/// The gradient passes through where `x` was finite and is 0 where a value was replaced.
public func nanToNum<T>(_ x: Variable<T>, nan: T = 0, posInf: T? = nil, negInf: T? = nil) -> Variable<T> {
    let y = replacingNonFinite(x.value, nan: nan,
                               posInf: posInf ?? T.greatestFiniteMagnitude,
                               negInf: negInf ?? -T.greatestFiniteMagnitude)
    return Variable.record("nanToNum", y, parents: [x]) { dY, _ in
        // [x finite] from primitives: 0·x is 0 where x is finite and NaN where x is ±∞ or NaN,
        // so replacing NaN by 1 marks the non-finite entries; 1 minus that is the mask.
        let nonFinite = replacingNonFinite(x.value.affine(scale: 0), nan: 1, posInf: 1, negInf: 1)
        return [dY * nonFinite.affine(scale: -1, shift: 1)]
    }
}

/// The backend's replacement kernel on a whole tensor.
func replacingNonFinite<T>(_ x: Tensor<T>, nan: T, posInf: T, negInf: T) -> Tensor<T> {
    Tensor(shape: x.shape) { y in
        x.withUnsafeBufferPointer { Compute.backend.nanToNum($0, nan: nan, posInf: posInf, negInf: negInf, y) }
    }
}
