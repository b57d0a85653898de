// `dmd2 convert`: an official checkpoint into our safetensors format, natively (no Python, no
// torch): DMD2's `.bin` generator checkpoints and EDM's `.pkl` network snapshots. Nothing in the
// source file is executed: its pickle runs on a reader that only interprets an allow-list of
// names (tensor rebuilds, storages, EDM's persistent objects) and refuses every other global.
import ArgumentParser
import DMD2Data
import EDM
import EDMConvert
import Foundation
import SafeTensors

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a DMD2 .bin checkpoint or an EDM .pkl network snapshot into a swift-dmd2 network .safetensors.",
        discussion: """
            The kind is read from the file's first bytes: a zip is a torch.save file (DMD2's .bin, the generator's \
            state dict), a pickle an EDM network snapshot (its 'ema' network). The config is inferred from the tensor \
            names and shapes (resolution, channels, classes, widths, blocks, attention, embedding width, output \
            channels) and written into the file's metadata with dropout and label dropout: a .bin's state dict does not \
            hold them (--dropout, --label-dropout, defaults 0.10 and 0), an EDM snapshot records them (the options \
            override). The pickle is read by a restricted reader that executes nothing: only tensor rebuilds, storages, \
            OrderedDict and, in a snapshot, EDM's persistent objects, torch.nn classes and numpy scalars are \
            interpreted as data; any other global is refused. Every zip member's CRC-32 is checked (docs/DATA.md).
            """)

    @Argument(help: "The source: a DMD2 .bin (e.g. pytorch_model.bin) or an EDM .pkl (e.g. edm-imagenet-64x64-cond-adm.pkl).")
    var source: String
    @Option(name: .long, help: "Output .safetensors file.")
    var out: String
    @Option(name: .long, help: "The key prefix that stands for EDM's 'model.' (default: found from map_layer0.weight).")
    var prefix: String?
    @Flag(name: .long, help: "Drop keys that are not part of the UNet instead of failing.")
    var ignoreUnknown = false
    @Option(name: .long, help: "Dropout recorded in the config (.bin default 0.10, EDM's ImageNet-64 teacher; .pkl: what the snapshot records).")
    var dropout: Double?
    @Option(name: .long, help: "Label dropout recorded in the config (.bin default 0; .pkl: what the snapshot records).")
    var labelDropout: Double?
    @Option(name: .long, help: "The snapshot entry holding the network (.pkl only).")
    var entry: String = "ema"

    func validate() throws {
        for value in [dropout, labelDropout].compactMap({ $0 }) where !(0...1).contains(value) {
            throw ValidationError("--dropout and --label-dropout must lie in [0, 1]")
        }
    }

    func run() throws {
        let url = URL(fileURLWithPath: source)
        let head = (try? FileHandle(forReadingFrom: url)).flatMap { handle in
            defer { try? handle.close() }
            return try? handle.read(upToCount: 2)
        } ?? Data()
        let isPickle = head.first == 0x80 || (head.isEmpty && url.pathExtension.lowercased() == "pkl")
        let started = ProcessInfo.processInfo.systemUptime
        let (file, config): (SafeTensorsFile, UNetConfig)
        if isPickle {
            (file, config) = try EDMPickleConverter.convert(url, entry: entry, prefix: prefix, ignoreUnknown: ignoreUnknown,
                                                            dropout: dropout, labelDropout: labelDropout) { print($0) }
        } else {
            (file, config) = try DMD2BinConverter.convert(url, prefix: prefix, ignoreUnknown: ignoreUnknown, dropout: dropout ?? 0.10,
                                                          labelDropout: labelDropout ?? 0) { print($0) }
        }
        print("config: \(try EDMCheckpoint.configJSON(config))")
        try file.write(to: URL(fileURLWithPath: out))
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        print(String(format: "wrote %@ (%@ bytes, %d tensors, %@ parameters) in %.1f s", out, size.formatted(), file.tensors.count,
                     config.parameterCount.formatted(), ProcessInfo.processInfo.systemUptime - started))
        print("sample: dmd2 sample --checkpoint \(out)")
    }
}
