@testable import FlexAttention
import Testing

@Suite("Malformed .npy files")
struct NumPyMalformedTests {
    static let valid = try! NumPyArray(shape: [2, 3], elements: .float32([1, 2, 3, 4, 5, 6])).encoded()

    @Test("bytes without the magic are not .npy", arguments: [
        [], Array("hello".utf8), Array("\u{93}NUMPX".utf8), Array("NUMPY\u{1}\u{0}".utf8), [0x93, 0x4E],
    ])
    func notNumPy(bytes: [UInt8]) {
        #expect(throws: NumPyError.notNumPy) { try NumPyArray(decoding: bytes) }
    }

    @Test("every truncation of a valid file is an error that says so")
    func truncations() {
        for length in 6..<Self.valid.count {
            #expect(throws: NumPyError.self, "\(length) bytes") { try NumPyArray(decoding: Array(Self.valid.prefix(length))) }
        }
        #expect(throws: NumPyError.dataSizeMismatch(expectedBytes: 24, actualBytes: 20)) {
            try NumPyArray(decoding: Array(Self.valid.dropLast(4)))
        }
        #expect(throws: NumPyError.dataSizeMismatch(expectedBytes: 24, actualBytes: 25)) {
            try NumPyArray(decoding: Self.valid + [0])
        }
    }

    @Test("a truncated header names the problem")
    func truncatedHeader() throws {
        let error = #expect(throws: NumPyError.self) { try NumPyArray(decoding: Array(Self.valid.prefix(40))) }
        #expect(error?.description.contains("corrupt .npy header") == true)
    }

    @Test("versions other than 1.0, 2.0 and 3.0 are refused", arguments: [(0, 0), (4, 0), (1, 1), (2, 5)])
    func versions(major: UInt8, minor: UInt8) {
        var bytes = Self.valid
        (bytes[6], bytes[7]) = (major, minor)
        #expect(throws: NumPyError.unsupportedVersion(major: major, minor: minor)) { try NumPyArray(decoding: bytes) }
    }

    @Test("Fortran order is refused")
    func fortranOrder() {
        let bytes = npyBytes(header: "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
                             data: [UInt8](repeating: 0, count: 24))
        #expect(throws: NumPyError.fortranOrder) { try NumPyArray(decoding: bytes) }
    }

    @Test("other dtypes are refused", arguments: ["<f8", ">f4", ">i8", "<u4", "<i2", "|b1", "f4", "<c8", "<U3"])
    func dtypes(descr: String) {
        let bytes = npyBytes(header: "{'descr': '\(descr)', 'fortran_order': False, 'shape': (1,), }",
                             data: [UInt8](repeating: 0, count: 8))
        #expect(throws: NumPyError.unsupportedDType(descr)) { try NumPyArray(decoding: bytes) }
    }

    @Test("structured dtypes are refused")
    func structured() {
        let bytes = npyBytes(header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (1,), }",
                             data: [0, 0, 0, 0])
        #expect(throws: NumPyError.unsupportedDType("structured")) { try NumPyArray(decoding: bytes) }
    }

    @Test("broken dictionaries are corrupt headers", arguments: [
        "", "[]", "{'descr': '<f4', 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}",
        "{'descr': '<f4', 'fortran_order': 0, 'shape': (1,)}",
        "{'descr': 4, 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (-1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1.5,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': ('1',)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} x",
        "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f4' 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (1,",
        "{'descr' '<f4', 'fortran_order': False, 'shape': (1,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296)}",
    ])
    func brokenDictionaries(dictionary: String) {
        let bytes = npyBytes(header: dictionary, data: [0, 0, 0, 0])
        let error = #expect(throws: NumPyError.self) { try NumPyArray(decoding: bytes) }
        guard case .malformedHeader? = error else {
            Issue.record("\(dictionary): \(String(describing: error))")
            return
        }
    }

    @Test("a version 3.0 header that is not UTF-8 is corrupt")
    func invalidUTF8() {
        var bytes = npyBytes(header: "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }", version: 3,
                             data: [0, 0, 0, 0])
        bytes[20] = 0xFF
        #expect(throws: NumPyError.self) { try NumPyArray(decoding: bytes) }
    }

    @Test("elements that do not fill the shape are refused")
    func elementCount() {
        #expect(throws: NumPyError.elementCountMismatch(shape: [2, 2], count: 3)) {
            try NumPyArray(shape: [2, 2], elements: .int32([1, 2, 3]))
        }
    }

    @Test("a missing file is unreadable")
    func missingFile() {
        let error = #expect(throws: NumPyError.self) { try NumPyArray(contentsOfFile: "/nonexistent/q.npy") }
        #expect(error == .unreadable(path: "/nonexistent/q.npy", reason: "No such file or directory"))
    }
}
