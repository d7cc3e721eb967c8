/// A token of the textual form, with the character offset where it starts.
struct ModToken: Equatable {
    enum Kind: Equatable {
        case identifier(String)
        /// Digits, kept as text so that `-` can join them before conversion (the Int minimum has no positive twin).
        case integer(String)
        case float(Float)
        /// Operators and punctuation: `|| && ! == != < <= > >= + - * / % ( ) [ ] , = ;`.
        case symbol(String)
        case end
    }

    var kind: Kind
    var position: Int
}

/// Splits the textual form into tokens.
enum ModLexer {
    private static let symbols = ["||", "&&", "==", "!=", "<=", ">=", "!", "<", ">", "+", "-", "*", "/", "%", "(", ")",
                                  "[", "]", ",", "=", ";"]

    static func tokens(_ text: String) throws -> [ModToken] {
        let characters = Array(text.unicodeScalars)
        var tokens: [ModToken] = []
        var i = 0
        while i < characters.count {
            let c = characters[i]
            if c.properties.isWhitespace {
                i += 1
            } else if c.isASCII && (c.properties.isAlphabetic || c == "_") {
                let start = i
                while i < characters.count, isIdentifierCharacter(characters[i]) { i += 1 }
                tokens.append(ModToken(kind: .identifier(String(String.UnicodeScalarView(characters[start..<i]))), position: start))
            } else if isDigit(c) {
                tokens.append(try number(characters, &i))
            } else if let symbol = symbolScalars.firstIndex(where: { matches($0, characters, at: i) }) {
                tokens.append(ModToken(kind: .symbol(symbols[symbol]), position: i))
                i += symbolScalars[symbol].count
            } else {
                throw ModError.syntax("unexpected character '\(c)'", position: i)
            }
        }
        tokens.append(ModToken(kind: .end, position: characters.count))
        return tokens
    }

    /// Digits, then optionally `.digits` and an exponent `e[+-]digits`; with either it is a Float.
    private static func number(_ characters: [Unicode.Scalar], _ i: inout Int) throws -> ModToken {
        let start = i
        func digits() { while i < characters.count, isDigit(characters[i]) { i += 1 } }
        digits()
        var isFloat = false
        if i + 1 < characters.count, characters[i] == ".", isDigit(characters[i + 1]) {
            isFloat = true
            i += 1
            digits()
        }
        if i < characters.count, characters[i] == "e" || characters[i] == "E" {
            var j = i + 1
            if j < characters.count, characters[j] == "+" || characters[j] == "-" { j += 1 }
            guard j < characters.count, isDigit(characters[j]) else {
                throw ModError.syntax("exponent without digits", position: i)
            }
            isFloat = true
            i = j
            digits()
        }
        if i < characters.count, isIdentifierCharacter(characters[i]) || characters[i] == "." {
            throw ModError.syntax("malformed number", position: start)
        }
        let text = String(String.UnicodeScalarView(characters[start..<i]))
        guard isFloat else { return ModToken(kind: .integer(text), position: start) }
        guard let value = Float(text), value.isFinite else {
            throw ModError.syntax("\(text) is outside the range of Float", position: start)
        }
        return ModToken(kind: .float(value), position: start)
    }

    private static func isDigit(_ c: Unicode.Scalar) -> Bool { ("0"..."9").contains(c) }

    private static func isIdentifierCharacter(_ c: Unicode.Scalar) -> Bool {
        c.isASCII && (c.properties.isAlphabetic || c == "_" || isDigit(c))
    }

    private static let symbolScalars = symbols.map { Array($0.unicodeScalars) }

    private static func matches(_ scalars: [Unicode.Scalar], _ characters: [Unicode.Scalar], at i: Int) -> Bool {
        i + scalars.count <= characters.count && characters[i..<i + scalars.count].elementsEqual(scalars)
    }
}
