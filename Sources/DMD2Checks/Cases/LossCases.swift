// Gradient checks and value tests for the losses (Losses.swift).
import DMD2Core
import DMD2Ops
import Foundation

public enum LossCases {
    public static var all: [OpCase] {
        let x = randn([2, 3, 2, 2], seed: 100), t = randn([2, 3, 2, 2], seed: 101)
        let n = x.count
        // EDM's λ(σ) per sample, [N, 1, 1, 1], and a full-shape weight; both positive.
        let wSample = randn([2, 1, 1, 1], seed: 102, scale: 0.3, shift: 1.5)
        let wFull = randn([2, 3, 2, 2], seed: 103, scale: 0.3, shift: 1.5)
        let logits = randn([2, 5], seed: 104, scale: 2)
        let big = Tensor<Double>(shape: [4], scalars: [-80, -30, 30, 80])
        // Classifier logits [N = 3, K = 4] with labels; a row far apart (e^−160 underflows in Float).
        let classLogits = randn([3, 4], seed: 105, scale: 2)
        let farLogits = Tensor<Double>(shape: [2, 3], scalars: [80, 0, -80, -40, 40, 1])
        return [
            OpCase("mseLoss", "[2,3,2,2]", inputs: [x, t], reductionLength: n,
                   double: { mseLoss($0[0], $0[1]) }, float: { mseLoss($0[0], $0[1]) }),
            OpCase("weightedMSELoss", "per-sample weight [2,1,1,1]", inputs: [x, t, wSample],
                   linearIn: [2], reductionLength: n,
                   double: { weightedMSELoss($0[0], $0[1], weight: $0[2]) },
                   float: { weightedMSELoss($0[0], $0[1], weight: $0[2]) }),
            OpCase("weightedMSELoss", "full-shape weight", inputs: [x, t, wFull],
                   linearIn: [2], reductionLength: n,
                   double: { weightedMSELoss($0[0], $0[1], weight: $0[2]) },
                   float: { weightedMSELoss($0[0], $0[1], weight: $0[2]) }),
            OpCase("softplusLoss", "[2,5]", inputs: [logits], reductionLength: logits.count,
                   double: { softplusLoss($0[0]) }, float: { softplusLoss($0[0]) }),
            OpCase("softplusLoss", "large |logits|", inputs: [big], reductionLength: big.count,
                   double: { softplusLoss($0[0]) }, float: { softplusLoss($0[0]) }),
            OpCase("softmaxCrossEntropy", "[3,4] labels 2,0,3", inputs: [classLogits], reductionLength: 4 * 3,
                   double: { softmaxCrossEntropy(logits: $0[0], labels: [2, 0, 3]) },
                   float: { softmaxCrossEntropy(logits: $0[0], labels: [2, 0, 3]) }),
            OpCase("softmaxCrossEntropy", "large |logits|, wrong labels", inputs: [farLogits], reductionLength: 3 * 2,
                   double: { softmaxCrossEntropy(logits: $0[0], labels: [2, 0]) },
                   float: { softmaxCrossEntropy(logits: $0[0], labels: [2, 0]) }),
        ]
    }
}
