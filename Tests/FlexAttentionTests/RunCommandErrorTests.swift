@testable import FlexAttention
import Foundation
import Testing

/// Every bad file and bad option: exit status 1, one line on stderr, and the folder left exactly as it was.
@Suite("flexattn run refuses bad input",
       .enabled(if: flexattnExecutable != nil, "the flexattn executable was not found beside the test bundle"))
struct RunCommandErrorTests {
    static let base = ["--q", "q.npy", "--k", "k.npy", "--v", "v.npy", "--out", "o.npy"]
    static let backward = ["--grad-out", "do.npy", "--dq", "dq.npy", "--dk", "dk.npy", "--dv", "dv.npy"]

    /// `base` with the value of `option` replaced.
    static func with(_ option: String, _ value: String) -> [String] {
        var arguments = base
        if let index = arguments.firstIndex(of: option) { arguments[index + 1] = value } else { arguments += [option, value] }
        return arguments
    }

    static let cases: [(String, [String])] = [
        ("unknown option", base + ["--causal"]),
        ("missing value", base + ["--lse"]),
        ("missing --out", Array(base.dropLast(2))),
        ("missing --q", Array(base.dropFirst(2))),
        ("option given twice", base + ["--q", "q.npy"]),
        ("--grad-out without --dq, --dk, --dv", base + ["--grad-out", "do.npy"]),
        ("--dq without --grad-out", base + Array(backward.dropFirst(2))),
        ("bad number", with("--scale", "abc")),
        ("infinite scale", with("--scale", "inf")),
        ("unknown device", with("--device", "tpu")),
        ("mask syntax", with("--mask", "q >= ")),
        ("mask of the wrong type", with("--mask", "q + kv")),
        ("unknown name in a mask", with("--mask", "q >= pos")),
        ("multi-line expression", with("--mask", "q >=\nkv +")),
        ("score of the wrong type", with("--score", "q > kv")),
        ("table without a file", with("--table", "doc")),
        ("table of <f2", with("--table", "t=q16.npy")),
        ("table of rank 4", with("--table", "t=q.npy")),
        ("table name twice", base + ["--table", "t=ids.npy", "--table", "t=ids.npy"]),
        ("table missing", with("--table", "t=none.npy")),
        ("--dtable without a backward pass", base + ["--table", "bias=bias.npy", "--dtable", "bias=db.npy"]),
        ("--dtable of no table", base + backward + ["--dtable", "bias=db.npy"]),
        ("--dtable of a table only the mask reads",
         base + backward + ["--table", "bias=bias.npy", "--mask", "bias[h, q, kv] > 0.5", "--dtable", "bias=db.npy"]),
        ("table index outside the table", base + ["--table", "t=ids.npy", "--mask", "t[q + kv] == 0"]),
        ("--dtable of an Int table", base + backward + ["--table", "t=ids.npy", "--dtable", "t=dt.npy"]),
        ("not .npy", with("--q", "text.npy")),
        ("truncated header", with("--q", "short-header.npy")),
        ("truncated data", with("--q", "short-data.npy")),
        ("Fortran order", with("--q", "fortran.npy")),
        ("dtype <f8", with("--q", "f8.npy")),
        ("big-endian", with("--q", "big.npy")),
        ("integer input", with("--q", "qi.npy")),
        ("wrong rank", with("--q", "q3.npy")),
        ("mixed dtypes", with("--q", "q16.npy")),
        ("mismatched head dim", with("--k", "k-d5.npy")),
        ("heads not divisible", with("--k", "k-h3.npy")),
        ("missing input", with("--v", "none.npy")),
        ("output gradient of the wrong shape", base + ["--grad-out", "k.npy"] + Array(backward.dropFirst(2))),
        ("two outputs in one file", base + ["--lse", "o.npy"]),
        ("output folder missing", with("--out", "missing/o.npy")),
        ("a later output cannot be placed", base + ["--lse", "folder"]),
        ("an output is a folder", with("--out", "folder")),
        ("two spellings of one output", base + ["--lse", "./o.npy"]),
        ("an endless device as input", with("--q", "/dev/zero")),
        ("a header nested too deep", with("--q", "deep.npy")),
    ]

    @Test("one line on stderr, exit status 1, no output file", arguments: cases)
    func refuses(label: String, arguments: [String]) throws {
        let folder = try Self.fixtures()
        let before = try folder.names()
        let result = try folder.run(arguments)
        #expect(result.status == 1, "\(label): status \(result.status)")
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == 2 && lines[1].isEmpty && lines[0].hasPrefix("flexattn: "),
                "\(label): stderr \(result.standardError.debugDescription)")
        #expect(try folder.names() == before, "\(label): files left behind")
    }

    /// Q [1, 4, 3, 4], K and V [1, 2, 5, 4] and friends, valid and not.
    static func fixtures() throws -> ScratchFolder {
        let folder = try ScratchFolder()
        func floats(_ shape: [Int]) -> NumPyArray.Elements { .float32((0..<shape.reduce(1, *)).map { Float($0 % 7) / 7 }) }
        let arrays: [(String, [Int], NumPyArray.Elements)] = [
            ("q.npy", [1, 4, 3, 4], floats([1, 4, 3, 4])), ("k.npy", [1, 2, 5, 4], floats([1, 2, 5, 4])),
            ("v.npy", [1, 2, 5, 4], floats([1, 2, 5, 4])), ("do.npy", [1, 4, 3, 4], floats([1, 4, 3, 4])),
            ("q16.npy", [1, 4, 3, 4], .float16([Float16](repeating: 1, count: 48))),
            ("qi.npy", [1, 4, 3, 4], .int32([Int32](repeating: 1, count: 48))),
            ("q3.npy", [4, 3, 4], floats([4, 3, 4])), ("k-d5.npy", [1, 2, 5, 5], floats([1, 2, 5, 5])),
            ("k-h3.npy", [1, 3, 5, 4], floats([1, 3, 5, 4])), ("ids.npy", [5], .int64([0, 0, 1, 1, 2])),
            ("bias.npy", [4, 3, 5], floats([4, 3, 5])),
        ]
        for (name, shape, elements) in arrays {
            try folder.write(NumPyArray(shape: shape, elements: elements).encoded(), to: name)
        }
        let valid = try NumPyArray(shape: [1, 4, 3, 4], elements: floats([1, 4, 3, 4])).encoded()
        try folder.write(Array("q,k,v\n1,2,3\n".utf8), to: "text.npy")
        try folder.write(Array(valid.prefix(30)), to: "short-header.npy")
        try folder.write(Array(valid.dropLast(1)), to: "short-data.npy")
        for (name, dictionary) in [
            ("fortran.npy", "{'descr': '<f4', 'fortran_order': True, 'shape': (1, 4, 3, 4), }"),
            ("f8.npy", "{'descr': '<f8', 'fortran_order': False, 'shape': (1, 4, 3, 2), }"),
            ("big.npy", "{'descr': '>f4', 'fortran_order': False, 'shape': (1, 4, 3, 4), }"),
            ("deep.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': " + String(repeating: "[", count: 25_000) + ", }"),
        ] {
            try folder.write(npyBytes(header: dictionary, data: [UInt8](repeating: 0, count: 192)), to: name)
        }
        try FileManager.default.createDirectory(at: folder.url.appendingPathComponent("folder"), withIntermediateDirectories: false)
        return folder
    }
}
