// Every op family's gradient-check cases. `OpCatalog.all` must be covered (OpCoverageTests).

public enum AllOpCases {
    public static var all: [OpCase] {
        ElementwiseCases.all + ReduceCases.all + MatmulCases.all
            + ConvCases.all + NormCases.all + ShapeCases.all + LossCases.all
    }
}
