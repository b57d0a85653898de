// EDM's network snapshots (`.pkl`, EDMSnapshot in DMD2Data) → our checkpoint file, natively.
//
// The state dict of the snapshot's `ema` network (EDMPrecond around a DhariwalUNet: names
// `model.…`) goes through the same path as DMD2's `.bin` (DMD2BinConverter): the structure
// is inferred from names and shapes, every tensor must be an entry of that config's table.
// What the weights do not say comes from the pickle itself, where EDM records it:
//
//   EDM                                           UNetConfig / check
//   UNet blocks' `dropout` attribute,
//     or the UNet's / network's init kwarg        dropout (EDM's DhariwalUNet default 0.10)
//   UNet's `label_dropout` (attribute or kwarg)   labelDropout (default 0)
//   network's img_resolution, img_channels,       must equal resolution, inChannels, labelDim
//     label_dim
//   UNet's kwargs img_resolution, in_channels,    must equal resolution, inChannels, outChannels,
//     out_channels, label_dim, model_channels,    labelDim, modelChannels, channelMult,
//     channel_mult, channel_mult_emb, num_blocks, channelMultEmb, numBlocks, attnResolutions
//     attn_resolutions
//   network's sigma_data                          must be 0.5 (our preconditioning's σ_d)
//   network's class                               must be EDMPrecond (not VP/VE/iDDPM)
//   UNet's class                                  must not be SongUNet (DDPM++/NCSN++)
import DMD2Data
import EDM
import Foundation
import SafeTensors

public enum EDMPickleConverter {
    /// Convert the network under `entry` of an EDM snapshot to our checkpoint file. `dropout` and
    /// `labelDropout`, when given, replace what the pickle records. `report` receives notes.
    public static func convert(_ url: URL, entry: String = "ema", prefix: String? = nil, ignoreUnknown: Bool = false,
                               dropout: Double? = nil, labelDropout: Double? = nil,
                               report: (String) -> Void = { _ in }) throws -> (file: SafeTensorsFile, config: UNetConfig) {
        let snapshot = try EDMSnapshot(url: url, entry: entry)
        let top = snapshot.moduleClasses[""] ?? "?"
        report("'\(snapshot.entry)': \(top) with \(snapshot.tensors.count) state-dict tensors (snapshot entries: \(snapshot.entries.joined(separator: ", ")))")
        if top.hasSuffix("Precond") && top != "EDMPrecond" {
            throw ConversionError("the network is a \(top); only EDM's own preconditioning (EDMPrecond) is implemented")
        }
        let (chosen, ours) = try DMD2BinConverter.selectNetwork(snapshot.tensors, prefix: prefix, report: report)
        // The module that holds map_layer0 is the UNet.
        let unetPath = String(chosen.dropLast(chosen.hasSuffix(".") ? 1 : 0))
        let unetClass = snapshot.moduleClasses[unetPath] ?? "?"
        if unetClass == "SongUNet" {
            throw ConversionError("the UNet is a SongUNet (DDPM++/NCSN++); only the ADM UNet (DhariwalUNet) is implemented")
        }

        func number(_ value: PickleValue?) -> Double? {
            switch value {
            case .int(let i)?: return Double(i)
            case .float(let d)?: return d
            case .bool(let b)?: return b ? 1 : 0
            default: return nil
            }
        }
        /// One value that every place recording it agrees on, or nil when none does.
        func agreed(_ what: String, _ found: [(place: String, value: Double)]) throws -> Double? {
            guard let first = found.first else { return nil }
            if let other = found.first(where: { $0.value != first.value }) {
                throw ConversionError("the pickle records \(what) = \(first.value) (\(first.place)) and \(other.value) (\(other.place))")
            }
            return first.value
        }
        let paths = unetPath.isEmpty ? [""] : [unetPath, ""]
        var dropouts: [(String, Double)] = []
        for path in paths {
            if let d = number(snapshot.initKwarg("dropout", of: path)) {
                dropouts.append(("init kwargs of \(path.isEmpty ? "the network" : "'\(path)'")", d))
            }
        }
        for (path, className) in snapshot.moduleClasses.sorted(by: { $0.key < $1.key })
        where className == "UNetBlock" && (unetPath.isEmpty || path.hasPrefix(unetPath + ".")) {
            if let d = number(snapshot.attributes[path]?["dropout"]) { dropouts.append(("block '\(path)'", d)) }
        }
        var labelDropouts: [(String, Double)] = []
        for path in paths {
            if let d = number(snapshot.setting("label_dropout", of: path)) {
                labelDropouts.append((path.isEmpty ? "the network" : "'\(path)'", d))
            }
        }
        let recordedDropout = try agreed("dropout", dropouts)
        let recordedLabelDropout = try agreed("label_dropout", labelDropouts)
        let useDropout = dropout ?? recordedDropout ?? 0.10
        let useLabelDropout = labelDropout ?? recordedLabelDropout ?? 0
        report("dropout \(useDropout) (\(dropout != nil ? "given" : recordedDropout != nil ? "from the pickle" : "not recorded: EDM's default")), "
               + "label dropout \(useLabelDropout) (\(labelDropout != nil ? "given" : recordedLabelDropout != nil ? "from the pickle" : "not recorded: 0"))")

        let config = try UNetConfig.infer(fromShapes: ours.tensors.mapValues(\.shape), dropout: useDropout, labelDropout: useLabelDropout)

        // What the pickle says about the structure must match the weights.
        func check(_ path: String, _ name: String, _ expected: [Int]) throws {
            guard let value = snapshot.setting(name, of: path) else { return }
            let got: [Int]?
            switch value {
            case .int(let i): got = [i]
            case .float(let d) where d == d.rounded() && abs(d) < 1e15: got = [Int(d)]
            default: got = value.integers
            }
            guard let got, got == expected else {
                let place = path.isEmpty ? "the network" : "'\(path)'"
                let said = got.map { $0.count == 1 ? "\($0[0])" : "\($0)" } ?? value.kind
                throw ConversionError("\(place) records \(name) = \(said), the weights say \(expected.count == 1 ? "\(expected[0])" : "\(expected)")")
            }
        }
        for (name, value) in [("img_resolution", [config.resolution]), ("img_channels", [config.inChannels]), ("label_dim", [config.labelDim])] {
            try check("", name, value)
        }
        if !unetPath.isEmpty {
            let unetChecks: [(String, [Int])] = [
                ("img_resolution", [config.resolution]), ("in_channels", [config.inChannels]), ("out_channels", [config.outChannels]),
                ("label_dim", [config.labelDim]), ("model_channels", [config.modelChannels]), ("channel_mult", config.channelMult),
                ("channel_mult_emb", [config.channelMultEmb]), ("num_blocks", [config.numBlocks]),
                ("attn_resolutions", config.attnResolutions)]
            for (name, value) in unetChecks { try check(unetPath, name, value) }
        }
        if let sigmaData = number(snapshot.setting("sigma_data", of: "")), sigmaData != 0.5 {
            throw ConversionError("sigma_data = \(sigmaData); our preconditioning uses 0.5")
        }
        let file = try DMD2BinConverter.checkpointFile(config: config, prefix: chosen, network: ours, ignoreUnknown: ignoreUnknown,
                                                       source: url, values: snapshot.floats, report: report)
        return (file, config)
    }
}
