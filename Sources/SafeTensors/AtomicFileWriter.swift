// AtomicFileWriter.swift — replaces a file's contents atomically with POSIX calls: write a
// uniquely named temporary file in the destination's folder, fsync it, rename(2) it over the
// destination, then fsync the folder so the rename itself is durable.

import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

enum AtomicFileWriter {
    /// Writes `data` to `url` atomically. On any failure the temporary file is removed and the
    /// destination is untouched; the thrown error names the destination path.
    static func write(_ data: Data, to url: URL) throws {
        let path = url.path
        func failure(_ what: String, _ code: Int32 = errno) -> SafeTensorsError {
            SafeTensorsError(.io, "\(what): \(String(cString: strerror(code)))", path: path)
        }
        guard url.isFileURL else {
            throw SafeTensorsError(.io, "cannot write to a non-file URL", path: url.absoluteString)
        }
        let folder = url.deletingLastPathComponent()
        let temporary = folder.appendingPathComponent(".\(url.lastPathComponent).\(UUID().uuidString).tmp").path

        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw failure("cannot create temporary file \(temporary)") }
        var descriptorOpen = true
        var renamed = false
        defer {
            if descriptorOpen { close(fd) }
            if !renamed { unlink(temporary) }
        }

        try data.withUnsafeBytes { (bytes: UnsafeRawBufferPointer) in
            var written = 0
            while written < bytes.count {
                let result = systemWrite(fd, bytes.baseAddress! + written, bytes.count - written)
                if result < 0 {
                    if errno == EINTR { continue }
                    throw failure("cannot write temporary file \(temporary)")
                }
                written += result
            }
        }
        guard fsync(fd) == 0 else { throw failure("cannot fsync temporary file \(temporary)") }
        descriptorOpen = false
        guard close(fd) == 0 else { throw failure("cannot close temporary file \(temporary)") }
        guard rename(temporary, path) == 0 else { throw failure("cannot rename temporary file \(temporary) into place") }
        renamed = true

        // Make the rename durable. Best effort: some file systems refuse fsync on a directory.
        let folderDescriptor = open(folder.path, O_RDONLY | O_CLOEXEC)
        if folderDescriptor >= 0 {
            _ = fsync(folderDescriptor)
            close(folderDescriptor)
        }
    }
}

/// write(2), spelled through the platform module so it cannot resolve to any other `write`.
private func systemWrite(_ fd: Int32, _ buffer: UnsafeRawPointer, _ count: Int) -> Int {
    #if canImport(Glibc)
    Glibc.write(fd, buffer, count)
    #elseif canImport(Musl)
    Musl.write(fd, buffer, count)
    #else
    Darwin.write(fd, buffer, count)
    #endif
}
