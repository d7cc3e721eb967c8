@testable import FlexAttention
import Testing

@Suite("NumPy .npy round trips")
struct NumPyRoundTripTests {
    static let shapes: [[Int]] = [[], [0], [1], [7], [2, 3], [3, 0, 2], [1, 3, 5, 7], [2, 1, 1, 1, 3]]

    static func elements(count: Int, kind: Int) -> NumPyArray.Elements {
        let indices = 0..<count
        switch kind {
        case 0: return .float32(indices.map { Float($0) * -0.37 + 1e-3 })
        case 1: return .float16(indices.map { Float16(Float($0) * 0.125 - 2) })
        case 2: return .int32(indices.map { Int32($0) * -70_001 })
        default: return .int64(indices.map { Int64($0) * 3_000_000_007 - 5 })
        }
    }

    @Test("every dtype, version and shape decodes to what was encoded",
          arguments: NumPyArray.FormatVersion.allCases, 0..<4)
    func roundTrip(version: NumPyArray.FormatVersion, kind: Int) throws {
        for shape in Self.shapes {
            let array = try NumPyArray(shape: shape, elements: Self.elements(count: shape.reduce(1, *), kind: kind))
            let bytes = array.encoded(version: version)
            #expect(bytes[6] == version.rawValue)
            let headerLength = version == .v1
                ? Int(bytes[8]) | Int(bytes[9]) << 8
                : Int(bytes[8]) | Int(bytes[9]) << 8 | Int(bytes[10]) << 16 | Int(bytes[11]) << 24
            let dataStart = (version == .v1 ? 10 : 12) + headerLength
            #expect(dataStart % 64 == 0, "data of \(shape) starts at \(dataStart)")
            #expect(bytes[dataStart - 1] == 0x0A)
            #expect(try NumPyArray(decoding: bytes) == array, "shape \(shape)")
        }
    }

    @Test("headers are written the way NumPy writes them")
    func headerText() throws {
        let cases: [([Int], String)] = [
            ([], "()"), ([3], "(3,)"), ([2, 3], "(2, 3)"), ([0, 1, 2], "(0, 1, 2)"),
        ]
        for (shape, shapeText) in cases {
            let bytes = try NumPyArray(shape: shape, elements: .float32([Float](repeating: 1, count: shape.reduce(1, *))))
                .encoded()
            let header = String(decoding: bytes[10...].prefix { $0 != 0x0A }, as: UTF8.self)
            #expect(header.hasPrefix("{'descr': '<f4', 'fortran_order': False, 'shape': \(shapeText), }"))
        }
    }

    @Test("header dictionaries in other spellings parse", arguments: [
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }",
        "{\"shape\": (2,3), \"descr\": \"<f4\", \"fortran_order\": False}",
        "{ 'fortran_order' : False , 'descr' : '=f4' , 'shape' : ( 2 , 3 , ) , }",
        "{'descr': '|f4', 'fortran_order': False, 'shape': (2L, 3L)}",
        "{'descr': '<f4', 'fortran_order': False, 'shape': [2, 3]}",
    ])
    func headerSpellings(dictionary: String) throws {
        let values: [Float] = [1, 2, 3, 4, 5, 6]
        let array = try NumPyArray(decoding: npyBytes(header: dictionary, data: littleEndianBytes(values)))
        #expect(array == (try NumPyArray(shape: [2, 3], elements: .float32(values))))
    }

    @Test("a one-element tuple written without its comma is still a shape")
    func parenthesisedInteger() throws {
        let array = try NumPyArray(decoding: npyBytes(
            header: "{'descr': '<i4', 'fortran_order': False, 'shape': (2)}", data: littleEndianBytes([Int32(7), 8])))
        #expect(array.shape == [2])
    }

    @Test("version 3.0 headers are UTF-8")
    func utf8Header() throws {
        // An ideographic space: whitespace in UTF-8, three non-space characters in Latin-1.
        let dictionary = "{'descr': '<i8', 'fortran_order': False, 'shape': (1,), }\u{3000}"
        let array = try NumPyArray(decoding: npyBytes(header: dictionary, version: 3, data: littleEndianBytes([Int64(-1)])))
        #expect(array.elements == .int64([-1]))
    }

    @Test("float arrays become contiguous tensors of the same dtype, and tensors come back as <f4")
    func tensors() throws {
        let halves: [Float16] = [0.5, -1.25, 3, 65504, -0.0009765625, 7]
        let tensor = try NumPyArray(shape: [1, 2, 3], elements: .float16(halves)).tensor()
        #expect(tensor.dtype == .float16 && tensor.shape == [1, 2, 3])
        #expect(tensor.floats() == halves.map(Float.init))
        let floats: [Float] = (0..<24).map { Float($0) / 3 }
        // BSHD values are in memory order [B, S, H, D]; the array comes back in logical order [B, H, S, D].
        let bshd = try Tensor(floats, shape: [1, 2, 3, 4], layout: .bshd)
        let logical = (0..<2).flatMap { h in (0..<3).flatMap { s in (0..<4).map { d in floats[(s * 2 + h) * 4 + d] } } }
        #expect(NumPyArray(bshd) == (try NumPyArray(shape: [1, 2, 3, 4], elements: .float32(logical))))
        #expect(try NumPyArray(shape: [4], elements: .float32([1, 2, 3, 4])).tensor().dtype == .float32)
        #expect(throws: NumPyError.self) { try NumPyArray(shape: [1], elements: .int32([1])).tensor() }
    }

    @Test("integer and float arrays become mod tables")
    func tables() throws {
        let ids = try NumPyArray(shape: [2, 2], elements: .int64([0, 1, -1, 2_000_000_000])).table(named: "doc")
        #expect(ids.shape == [2, 2] && ids.elements == .int32([0, 1, -1, 2_000_000_000]))
        let bias = try NumPyArray(shape: [3], elements: .float32([0.5, 1, 2])).table(named: "bias")
        #expect(bias.elementType == .float)
        #expect(try NumPyArray(shape: [1], elements: .int32([4])).table(named: "n").elements == .int32([4]))
        #expect(throws: ModError.self) { try NumPyArray(shape: [1], elements: .int64([1 << 40])).table(named: "t") }
        #expect(throws: ModError.self) { try NumPyArray(shape: [1, 1, 1, 1], elements: .int32([1])).table(named: "t") }
        #expect(throws: ModError.self) { try NumPyArray(shape: [], elements: .int32([1])).table(named: "t") }
        #expect(throws: NumPyError.self) { try NumPyArray(shape: [1], elements: .float16([1])).table(named: "t") }
    }
}
