// Several tensors' storage at once, for one backend call, without one nested closure per tensor.
//
//     let outs = Tensor<T>.withBuffers(reading: [x, gamma, beta], writing: [x.shape, [N·G], [N·G]]) { i, o in
//         Compute.backend.groupNorm(i[0]!, …, gamma: i[1], beta: i[2], o[0], mean: o[1], rstd: o[2])
//     }
//
// The pointers are valid only inside `body`, as with `withUnsafeBufferPointer`.
extension Tensor {
    /// Runs `body` with the buffers of `inputs` (a nil input gives a nil buffer) and of new
    /// tensors of `outputShapes`, and returns those tensors in order. `body` must write every
    /// element of every output it keeps (the storage starts uninitialised, as with
    /// `init(shape:unsafeUninitialized:)`); an output it does not write must not be used.
    public static func withBuffers(
        reading inputs: [Tensor?], writing outputShapes: [[Int]],
        _ body: (_ inputs: [UnsafeBufferPointer<T>?], _ outputs: [UnsafeMutableBufferPointer<T>]) -> Void
    ) -> [Tensor] {
        func read(_ i: Int, _ acc: [UnsafeBufferPointer<T>?]) -> [Tensor] {
            guard i < inputs.count else { return write(0, acc, []) }
            guard let t = inputs[i] else { return read(i + 1, acc + [nil]) }
            return t.withUnsafeBufferPointer { read(i + 1, acc + [$0]) }
        }
        func write(_ i: Int, _ ins: [UnsafeBufferPointer<T>?], _ outs: [UnsafeMutableBufferPointer<T>]) -> [Tensor] {
            guard i < outputShapes.count else { body(ins, outs); return [] }
            var rest: [Tensor] = []
            let t = Tensor(shape: outputShapes[i], unsafeUninitialized: { rest = write(i + 1, ins, outs + [$0]) })
            return [t] + rest
        }
        return read(0, [])
    }
}
