// Official checkpoints into ours, without Python (a target of its own so that EDM, the model,
// does not depend on the data readers): DMD2's `.bin` (a torch.save zip of the
// generator's state dict, TorchStateDict in DMD2Data) → an EDMCheckpoint safetensors file.
//
// The state dict's keys carry a prefix before EDM's names (`feedforward_model.model.` in DMD2,
// `module.` from DDP, none for a bare UNet): it is found from where `map_layer0.weight` sits, or
// given. The config is inferred from the names and shapes (the input conv names the resolution,
// `_down` blocks the levels, decoder widths the channel multipliers, `qkv` the attention
// resolutions, `map_layer0` the embedding width, `map_label` the classes, `out_conv` the output
// channels); dropout and label dropout are not in a state dict and are given (defaults: EDM's
// ImageNet-64 teacher, 0.10 and 0). Every tensor must then be an entry of that config's table
// with its shape: an unknown key stops the conversion, naming it, unless `ignoreUnknown`.
import DMD2Data
import EDM
import Foundation
import SafeTensors

public struct ConversionError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

extension UNetConfig {
    /// The config of an EDM ADM state dict from its `model.…` names and shapes.
    public static func infer(fromShapes shapes: [String: [Int]], dropout: Double = 0.10, labelDropout: Double = 0) throws -> UNetConfig {
        func shape(_ name: String) throws -> [Int] {
            guard let s = shapes[name] else { throw ConversionError("no '\(name)': not an EDM ADM UNet (DhariwalUNet) state dict") }
            return s
        }
        let map = try shape("model.map_layer0.weight")
        guard map.count == 2, map[1] > 0, map[0] % map[1] == 0 else {
            throw ConversionError("model.map_layer0.weight has shape \(map): the embedding width must be a multiple of the model channels")
        }
        let (emb, mc) = (map[0], map[1])
        let convs = shapes.keys.filter { $0.hasPrefix("model.enc.") && $0.hasSuffix("_conv.weight") }
        guard convs.count == 1, let conv = convs.first else {
            throw ConversionError("expected one input conv 'model.enc.{R}x{R}_conv.weight', found \(convs.sorted())")
        }
        let part = conv.split(separator: ".")[2]
        guard let res = Int(part.split(separator: "x")[0]), res > 0, res <= 1 << 16 else {
            throw ConversionError("cannot read the resolution from '\(conv)'")
        }
        var levels = [res]
        while levels.count < 32, shapes["model.enc.\(levels.last! / 2)x\(levels.last! / 2)_down.conv0.weight"] != nil {
            levels.append(levels.last! / 2)
        }
        var mult: [Int] = [], attn: [Int] = []
        for r in levels {
            let width = try shape("model.dec.\(r)x\(r)_block0.conv1.weight")
            guard let w = width.first, w % mc == 0 else {
                throw ConversionError("level \(r)x\(r): width \(width.first ?? 0) is not a multiple of the model channels \(mc)")
            }
            mult.append(w / mc)
            if shapes["model.dec.\(r)x\(r)_block0.qkv.weight"] != nil { attn.append(r) }
        }
        var blocks = 0
        while blocks < 1000, shapes["model.enc.\(res)x\(res)_block\(blocks).conv0.weight"] != nil { blocks += 1 }
        let inConv = try shape(conv), outConv = try shape("model.out_conv.weight")
        guard inConv.count == 4, outConv.count == 4 else { throw ConversionError("the input and output convs must be 4-D weights") }
        let labels = shapes["model.map_label.weight"]
        let config = UNetConfig(
            resolution: res, inChannels: inConv[1], outChannels: outConv[0], labelDim: labels?.last ?? 0,
            modelChannels: mc, channelMult: mult, channelMultEmb: emb / mc, numBlocks: blocks, attnResolutions: attn,
            dropout: dropout, labelDropout: labelDropout)
        do { try config.validate() } catch { throw ConversionError("the inferred config is invalid: \(error)") }
        return config
    }
}

public enum DMD2BinConverter {
    public static let anchor = "map_layer0.weight"

    /// Convert a DMD2 `.bin` to our checkpoint file. `report` receives progress notes.
    public static func convert(_ url: URL, prefix: String? = nil, ignoreUnknown: Bool = false, dropout: Double = 0.10,
                               labelDropout: Double = 0, report: (String) -> Void = { _ in }) throws -> (file: SafeTensorsFile, config: UNetConfig) {
        let state = try TorchStateDict(url: url)
        if !state.nestedUnder.isEmpty { report("using the nested dict under '\(state.nestedUnder.joined(separator: "."))'") }
        let (chosen, ours) = try selectNetwork(state.tensors, prefix: prefix, report: report)
        let config = try UNetConfig.infer(fromShapes: ours.tensors.mapValues(\.shape), dropout: dropout, labelDropout: labelDropout)
        let file = try checkpointFile(config: config, prefix: chosen, network: ours, ignoreUnknown: ignoreUnknown, source: url,
                                      values: state.floats, report: report)
        return (file, config)
    }

    /// The tensors of one network: those under `prefix` (or the one prefix before `anchor`),
    /// renamed `model.…`, and the names of the others.
    static func selectNetwork(_ tensors: [(name: String, tensor: PickleTensor)], prefix: String?, report: (String) -> Void) throws
        -> (prefix: String, network: (tensors: [String: PickleTensor], outside: [String])) {
        let names = tensors.map(\.name)
        let chosen: String
        if let prefix {
            guard names.contains(prefix + anchor) else { throw ConversionError("--prefix '\(prefix)': no key '\(prefix)\(anchor)'") }
            chosen = prefix
        } else {
            let found = names.filter { $0.hasSuffix(anchor) }.map { String($0.dropLast(anchor.count)) }.sorted()
            guard found.count == 1 else {
                throw ConversionError("expected one network (one '…\(anchor)' key), found prefixes \(found); choose one with --prefix")
            }
            chosen = found[0]
        }
        var ours: [String: PickleTensor] = [:], outside: [String] = []
        for (name, tensor) in tensors {
            if name.hasPrefix(chosen) { ours["model." + name.dropFirst(chosen.count)] = tensor } else { outside.append(name) }
        }
        report("\(tensors.count) tensors; prefix '\(chosen)' → 'model.' for \(ours.count) of them")
        let narrow = Set(ours.values.map(\.dtype)).subtracting(["float32"]).sorted()
        if !narrow.isEmpty { report("widening \(narrow.joined(separator: ", ")) tensors to float32") }
        return (chosen, (ours, outside))
    }

    /// Our checkpoint file for `config` from the network's tensors: every entry of the config's
    /// table with its shape, unknown keys refused unless `ignoreUnknown`, resample filters checked,
    /// non-finite values refused.
    static func checkpointFile(config: UNetConfig, prefix chosen: String, network: (tensors: [String: PickleTensor], outside: [String]),
                               ignoreUnknown: Bool, source url: URL, values: (String, PickleTensor) throws -> [Float],
                               report: (String) -> Void) throws -> SafeTensorsFile {
        let ours = network.tensors
        let entries = UNetLayout(config).stateEntries
        let expected = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        let unknown = (network.outside + ours.keys.filter { expected[$0] == nil }).sorted()
        if !unknown.isEmpty {
            let list = unknown.prefix(30).joined(separator: ", ") + (unknown.count > 30 ? " …" : "")
            guard ignoreUnknown else { throw ConversionError("\(unknown.count) unknown keys: \(list) (pass --ignore-unknown to drop them)") }
            report("dropping \(unknown.count) unknown keys: \(list)")
        }
        var file = SafeTensorsFile(metadata: [
            "format": EDMCheckpoint.format, "format_version": EDMCheckpoint.formatVersion,
            "config": try EDMCheckpoint.configJSON(config), "step": "0",
            "source": url.lastPathComponent, "converter": "dmd2 convert"])
        for entry in entries {
            guard let t = ours[entry.name] else {
                if entry.isParameter { throw ConversionError("missing key '\(chosen)\(entry.name.dropFirst("model.".count))' (shape \(entry.shape))") }
                file[entry.name] = try SafeTensor([Float](repeating: 0.25, count: entry.shape.reduce(1, *)), shape: entry.shape)
                continue
            }
            guard t.shape == entry.shape else {
                throw ConversionError("'\(entry.name)' has shape \(t.shape), the inferred config expects \(entry.shape)")
            }
            let values = try values(entry.name, t)
            if !entry.isParameter, let bad = values.first(where: { $0 != 0.25 }) {
                throw ConversionError("'\(entry.name)' holds \(bad); a resample filter is 0.25 everywhere (2×2 average)")
            }
            if let bad = values.firstIndex(where: { !$0.isFinite }) {
                throw ConversionError("'\(entry.name)' element \(bad) is \(values[bad]): the source holds non-finite weights")
            }
            file[entry.name] = try SafeTensor(values, shape: entry.shape)
        }
        return file
    }
}
