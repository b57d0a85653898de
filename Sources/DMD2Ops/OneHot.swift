// Class labels as one-hot rows: the encoding every class-conditional network, loss and data path
// uses (ADM's `map_label` reads it, docs/ARCHITECTURE-ADM.md "Embedding" step 3).
//
//   y[n, k] = 1 if labels[n] == k, else 0          y [N, K], labels[n] ∈ {−1} ∪ 0..<K
//
// The label −1 means "no class" (an unlabelled image, `ImageDatasetLabel.none` in DMD2Data, or
// the unconditional branch of classifier-free guidance): its row is all zeros, which is exactly
// the network's unconditional input. Any other label outside 0..<K is a programming error (the
// trainers check a dataset's class count against the network before they read it) and stops
// with a message naming the label and K.
import DMD2Core

/// One-hot rows [N, K] for class indices in 0..<K; the label −1 ("no class", unconditional)
/// gives a zero row.
public func oneHot<T: TensorScalar>(_ labels: [Int], classes K: Int, as: T.Type = T.self) -> Tensor<T> {
    precondition(K >= 0, "oneHot: \(K) classes")
    var scalars = [T](repeating: 0, count: labels.count * K)
    for (n, label) in labels.enumerated() where label != -1 {
        precondition((0..<K).contains(label), "oneHot: label \(label) outside 0..<\(K) (or −1 for no class)")
        scalars[n * K + label] = 1
    }
    return Tensor(shape: [labels.count, K], scalars: scalars)
}
