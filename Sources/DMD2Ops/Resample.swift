// The ADM UNet's resampling: 2×2 average pooling (down blocks) and nearest-neighbour 2×
// upsampling (up blocks), on [N, C, H, W] with every one of the P = N·C planes independent.
//
// avgPool2x2:        y[n, c, i, j] = ¼ Σ_{a,b∈{0,1}} x[n, c, 2i + a, 2j + b]      (H, W even)
//                    dx[n, c, h, w] = ¼ dy[n, c, ⌊h/2⌋, ⌊w/2⌋]
// upsampleNearest2x: y[n, c, i, j] = x[n, c, ⌊i/2⌋, ⌊j/2⌋]
//                    dx[n, c, h, w] = Σ_{a,b∈{0,1}} dy[n, c, 2h + a, 2w + b]
// The two are adjoint up to a factor: upsample = 4·avgPool2x2ᵀ.
import DMD2Core

/// 2×2 average pooling with stride 2: [N, C, H, W] → [N, C, H/2, W/2] (H and W even).
/// Linear in x.
public func avgPool2x2<T>(_ x: Variable<T>) -> Variable<T> {
    precondition(x.value.rank == 4, "avgPool2x2: input must be [N, C, H, W], got \(x.shape)")
    let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    precondition(H % 2 == 0 && W % 2 == 0, "avgPool2x2: height and width must be even, input is \(x.shape)")
    let y = Tensor<T>(shape: [N, C, H / 2, W / 2]) { ys in
        x.value.withUnsafeBufferPointer { xs in
            Compute.backend.avgPool2x2(xs, planes: N * C, H: H, W: W, ys)
        }
    }
    let inputShape = x.shape
    return Variable.record("avgPool2x2", y, parents: [x]) { dY, needed in
        guard needed[0] else { return [nil] }
        let dX = Tensor<T>(shape: inputShape) { dxs in
            dY.withUnsafeBufferPointer { dys in
                Compute.backend.avgPool2x2Backward(dys, planes: N * C, H: H, W: W, dxs)
            }
        }
        return [dX]
    }
}

/// Nearest-neighbour upsampling by 2: [N, C, H, W] → [N, C, 2H, 2W], each value copied to a
/// 2×2 block. Linear in x.
public func upsampleNearest2x<T>(_ x: Variable<T>) -> Variable<T> {
    precondition(x.value.rank == 4, "upsampleNearest2x: input must be [N, C, H, W], got \(x.shape)")
    let (N, C, H, W) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let y = Tensor<T>(shape: [N, C, 2 * H, 2 * W]) { ys in
        x.value.withUnsafeBufferPointer { xs in
            Compute.backend.upsampleNearest2x(xs, planes: N * C, H: H, W: W, ys)
        }
    }
    let inputShape = x.shape
    return Variable.record("upsampleNearest2x", y, parents: [x]) { dY, needed in
        guard needed[0] else { return [nil] }
        let dX = Tensor<T>(shape: inputShape) { dxs in
            dY.withUnsafeBufferPointer { dys in
                Compute.backend.upsampleNearest2xBackward(dys, planes: N * C, H: H, W: W, dxs)
            }
        }
        return [dX]
    }
}
