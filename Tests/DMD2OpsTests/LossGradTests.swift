// XCTest entry points for the Loss family's checks (cases: Sources/DMD2Checks/Cases/LossCases.swift).
import DMD2Core
import DMD2Ops
import DMD2Checks
import Foundation
import DMD2TestSupport
import XCTest

final class LossGradTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }
    func testGradientChecks() { runChecks(LossCases.all) }
}

final class LossValueTests: CheckedTestCase {
    override func setUp() { Threads.count = 2 }

    func testMSELossValueAndGradient() {
        // (x − t) = [1, −2, 3, 0]: mean of squares = 14/4 = 3.5; ∂/∂x = 2(x − t)/4.
        let x = Variable(Tensor<Double>(shape: [2, 2], scalars: [1, 0, 4, 1]), requiresGrad: true)
        let t = Variable(Tensor<Double>(shape: [2, 2], scalars: [0, 2, 1, 1]))
        let loss = mseLoss(x, t)
        XCTAssertEqual(loss.shape, [])
        XCTAssertEqual(loss.value.scalar, 3.5)
        loss.backward()
        XCTAssertEqual(x.grad?.scalars, [0.5, -1, 1.5, 0])
    }

    func testWeightedMSELossWithPerSampleWeight() {
        // Sample 0: squares [1, 4], weight 2; sample 1: squares [9, 0], weight 0.5.
        // mean = (2·1 + 2·4 + 0.5·9 + 0.5·0)/4 = 14.5/4.
        let x = Variable(Tensor<Double>(shape: [2, 2], scalars: [1, 0, 4, 1]), requiresGrad: true)
        let t = Variable(Tensor<Double>(shape: [2, 2], scalars: [0, 2, 1, 1]))
        let w = Variable(Tensor<Double>(shape: [2, 1], scalars: [2, 0.5]), requiresGrad: true)
        let loss = weightedMSELoss(x, t, weight: w)
        XCTAssertEqual(loss.shape, [])
        XCTAssertEqual(loss.value.scalar, 14.5 / 4)
        loss.backward()
        XCTAssertEqual(x.grad?.scalars, [1, -2, 0.75, 0])          // 2·w·(x − t)/4
        XCTAssertEqual(w.grad?.scalars, [5.0 / 4, 9.0 / 4])        // Σ (x − t)²/4 per sample
    }

    func testSoftplusLossValuesAndDMD2CriticLoss() {
        // softplus(0) = ln 2; softplus(±80) = 80 and ≈ 1.8e−35 (no overflow).
        let zero = softplusLoss(Variable(Tensor<Double>(shape: [3], scalars: [0, 0, 0])))
        XCTAssertEqual(zero.shape, [])
        XCTAssertEqual(zero.value.scalar, 0.6931471805599453, accuracy: 1e-15)
        let big = softplusLoss(Variable(Tensor<Float>(shape: [2], scalars: [80, -80])))
        XCTAssertEqual(big.value.scalar, 40, accuracy: 1e-5)
        // Critic loss L_D = softplusLoss(D(fake)) + softplusLoss(−D(real)), with gradient σ(z)/n.
        let fake = Variable(Tensor<Double>(shape: [2], scalars: [0, 2]), requiresGrad: true)
        let real = Variable(Tensor<Double>(shape: [2], scalars: [1, -1]), requiresGrad: true)
        let lossD = softplusLoss(fake) + softplusLoss(-real)
        let sp = { (z: Double) in Foundation.log(1 + Foundation.exp(z)) }
        let sig = { (z: Double) in 1 / (1 + Foundation.exp(-z)) }
        XCTAssertEqual(lossD.value.scalar, (sp(0) + sp(2)) / 2 + (sp(-1) + sp(1)) / 2, accuracy: 1e-14)
        lossD.backward()
        for (g, z) in zip(fake.grad?.scalars ?? [], [0.0, 2]) { XCTAssertEqual(g, sig(z) / 2, accuracy: 1e-15) }
        for (g, z) in zip(real.grad?.scalars ?? [], [1.0, -1]) { XCTAssertEqual(g, -sig(-z) / 2, accuracy: 1e-15) }
    }

    func testSoftmaxCrossEntropyValuesAndGradient() {
        // Equal logits: every class has p = 1/K, so L = log K and dz = (1/K − onehot)/N.
        let flat = Variable(Tensor<Double>(shape: [2, 4], scalars: [Double](repeating: 3, count: 8)), requiresGrad: true)
        let lossFlat = softmaxCrossEntropy(logits: flat, labels: [1, 3])
        XCTAssertEqual(lossFlat.shape, [])
        XCTAssertEqual(lossFlat.value.scalar, Foundation.log(4.0), accuracy: 1e-15)
        lossFlat.backward()
        XCTAssertEqual(flat.grad?.scalars ?? [], [0.125, -0.375, 0.125, 0.125, 0.125, 0.125, 0.125, -0.375])
        // Against the definition −mean log softmax, written out.
        let z: [[Double]] = [[0.5, -1, 2], [3, 0, -2]], labels = [0, 1]
        let direct = zip(z, labels).map { row, y in
            Foundation.log(row.map { Foundation.exp($0) }.reduce(0, +)) - row[y]
        }.reduce(0, +) / 2
        let loss = softmaxCrossEntropy(logits: Variable(Tensor(shape: [2, 3], scalars: z.flatMap { $0 })), labels: labels)
        XCTAssertEqual(loss.value.scalar, direct, accuracy: 1e-14)
        // Large logits, confidently wrong: L = 200 + log(1 + e^−200 + e^−400) ≈ 200, in Float too
        // (p of the true class underflows; log p would be −∞).
        let far = Variable(Tensor<Float>(shape: [1, 3], scalars: [100, -100, -300]), requiresGrad: true)
        let lossFar = softmaxCrossEntropy(logits: far, labels: [1])
        XCTAssertEqual(lossFar.value.scalar, 200, accuracy: 1e-4)
        lossFar.backward()
        XCTAssertEqual(far.grad?.scalars ?? [], [1, -1, 0])
    }
}
