// `dmd2 convert`: an official checkpoint into our safetensors format, natively (no Python, no
// torch): DMD2's `.bin` generator checkpoints. Nothing in the source file is executed: its
// pickle runs on a reader that only rebuilds tensors and refuses every other global.
import ArgumentParser
import DMD2Data
import EDM
import EDMConvert
import Foundation
import SafeTensors

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "convert",
        abstract: "Convert a DMD2 .bin checkpoint (torch.save of the generator's state dict) into a swift-dmd2 network .safetensors.",
        discussion: """
            The config is inferred from the tensor names and shapes (resolution, channels, classes, widths, blocks, \
            attention, embedding width, output channels) and written into the file's metadata with dropout and label \
            dropout, which a state dict does not hold. The file's pickle is read by a restricted reader that executes \
            nothing: only tensor rebuilds, storages and OrderedDict are interpreted, any other global is refused. Every \
            zip member's CRC-32 is checked. EDM's network pickles (.pkl) are not read natively yet: convert them with \
            reference/convert_edm_pkl.py (docs/DATA.md).
            """)

    @Argument(help: "The source: a DMD2 .bin (e.g. pytorch_model.bin).")
    var source: String
    @Option(name: .long, help: "Output .safetensors file.")
    var out: String
    @Option(name: .long, help: "The key prefix that stands for EDM's 'model.' (default: found from map_layer0.weight).")
    var prefix: String?
    @Flag(name: .long, help: "Drop keys that are not part of the UNet instead of failing.")
    var ignoreUnknown = false
    @Option(name: .long, help: "Dropout recorded in the config (not in a state dict; EDM's ImageNet-64 teacher: 0.10).")
    var dropout: Double = 0.10
    @Option(name: .long, help: "Label dropout recorded in the config.")
    var labelDropout: Double = 0

    func validate() throws {
        guard (0...1).contains(dropout), (0...1).contains(labelDropout) else {
            throw ValidationError("--dropout and --label-dropout must lie in [0, 1]")
        }
    }

    func run() throws {
        let url = URL(fileURLWithPath: source)
        if url.pathExtension.lowercased() == "pkl" {
            throw CLIError("\(source): EDM network pickles (.pkl) are not read natively yet; convert with reference/convert_edm_pkl.py (docs/DATA.md)")
        }
        let started = ProcessInfo.processInfo.systemUptime
        let (file, config) = try DMD2BinConverter.convert(url, prefix: prefix, ignoreUnknown: ignoreUnknown, dropout: dropout,
                                                          labelDropout: labelDropout) { print($0) }
        print("config: \(try EDMCheckpoint.configJSON(config))")
        try file.write(to: URL(fileURLWithPath: out))
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        print(String(format: "wrote %@ (%@ bytes, %d tensors, %@ parameters) in %.1f s", out, size.formatted(), file.tensors.count,
                     config.parameterCount.formatted(), ProcessInfo.processInfo.systemUptime - started))
        print("sample: dmd2 sample --checkpoint \(out)")
    }
}
