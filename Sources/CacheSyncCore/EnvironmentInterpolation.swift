/// Replaces `${NAME}` and `${NAME:-default}` in config text before YAML parsing.
///
/// - `${NAME}` is the value of `NAME`; an unset variable is an error naming the line and the variable.
///   A variable set to the empty string gives the empty string.
/// - `${NAME:-default}` is the value of `NAME`, or `default` when `NAME` is unset or empty (as in a POSIX shell).
///   The default runs to the first `}` and is taken literally (no nested `${...}`).
/// - `$${` is a literal `${`: `$${HOME}` stays `${HOME}` in the parsed value.
/// - A `$` not followed by `{` is kept as it is.
/// - Names are `[A-Za-z_][A-Za-z0-9_]*`. Substitution happens in every value and key; YAML comments
///   (`#` after whitespace, outside quotes) are left alone, so a commented-out line never needs its variable.
/// - The value is pasted into the YAML text as it is: quote the field (`uri: "${MONGODB_URI}"`) when the value may
///   hold YAML punctuation. A value with a line break is an error, so line numbers in messages stay right.
public enum EnvironmentInterpolation {
    /// The text with every reference replaced; line breaks are kept where they were.
    public static func interpolate(_ text: String, environment: [String: String],
                                   file: String) throws(ConfigError) -> String {
        var output = ""
        output.reserveCapacity(text.utf8.count)
        var lineNumber = 1
        var lineStart = text.startIndex
        while lineStart < text.endIndex {
            let lineEnd = text[lineStart...].firstIndex(where: isLineBreak) ?? text.endIndex
            let line = text[lineStart..<lineEnd]
            let comment = commentStart(in: line)
            output += try interpolateLine(line[..<comment], environment: environment, file: file, line: lineNumber)
            output += line[comment...]
            guard lineEnd < text.endIndex else {
                break
            }
            output.append(text[lineEnd])
            lineStart = text.index(after: lineEnd)
            lineNumber += 1
        }
        return output
    }

    /// One line (without its comment) with every reference replaced.
    private static func interpolateLine(_ text: Substring, environment: [String: String], file: String,
                                        line: Int) throws(ConfigError) -> String {
        var output = ""
        var index = text.startIndex
        while index < text.endIndex {
            let character = text[index]
            guard character == "$" else {
                output.append(character)
                index = text.index(after: index)
                continue
            }
            let next = text.index(after: index)
            if text[next...].hasPrefix("${") {
                output += "${"
                index = text.index(next, offsetBy: 2)
                continue
            }
            guard next < text.endIndex, text[next] == "{" else {
                output.append(character)
                index = next
                continue
            }
            let bodyStart = text.index(after: next)
            guard let close = text[bodyStart...].firstIndex(of: "}") else {
                throw ConfigError(file: file, line: line,
                                  message: "unterminated \"${\" (write ${NAME} or ${NAME:-default}; write $${ for a literal ${)")
            }
            output += try resolve(String(text[bodyStart..<close]), environment: environment, file: file, line: line)
            index = text.index(after: close)
        }
        return output
    }

    /// Where a YAML comment starts in `line` (`#` at the start or after whitespace, outside quotes and outside
    /// `${...}`), or its end when it has none. Quotes count only where a YAML scalar can start with them.
    static func commentStart(in line: Substring) -> Substring.Index {
        var quote: Character?
        var previous: Character?
        var afterSpace = true
        var index = line.startIndex
        while index < line.endIndex {
            let character = line[index]
            if let open = quote {
                let escaped = open == "\"" ? character == "\\" : character == "'" && line[index...].hasPrefix("''")
                if escaped, line.index(after: index) < line.endIndex {
                    index = line.index(index, offsetBy: 2)
                    continue
                }
                if character == open {
                    quote = nil
                }
                index = line.index(after: index)
                continue
            }
            if line[index...].hasPrefix("$${") {
                index = line.index(index, offsetBy: 3)
                (previous, afterSpace) = ("{", false)
                continue
            }
            if line[index...].hasPrefix("${"), let close = line[index...].firstIndex(of: "}") {
                index = line.index(after: close)
                (previous, afterSpace) = ("}", false)
                continue
            }
            if character == "#", afterSpace {
                return index
            }
            if character == "\"" || character == "'", previous.map({ ":-[{,?".contains($0) }) ?? true {
                quote = character
            }
            if character == " " || character == "\t" {
                afterSpace = true
            } else {
                (previous, afterSpace) = (character, false)
            }
            index = line.index(after: index)
        }
        return line.endIndex
    }

    /// Whether `character` ends a line.
    private static func isLineBreak(_ character: Character) -> Bool {
        character == "\n" || character == "\r\n" || character == "\r"
    }

    /// The replacement for the text between `${` and `}`.
    private static func resolve(_ body: String, environment: [String: String], file: String,
                                line: Int) throws(ConfigError) -> String {
        let name: String
        let fallback: String?
        if let separator = body.range(of: ":-") {
            name = String(body[..<separator.lowerBound])
            fallback = String(body[separator.upperBound...])
        } else {
            name = body
            fallback = nil
        }
        guard isValidName(name) else {
            throw ConfigError(file: file, line: line,
                              message: "\"${\(body)}\" is not a variable reference (expected ${NAME} or ${NAME:-default}; write $${ for a literal ${)")
        }
        let value: String
        if let fallback {
            if let set = environment[name], !set.isEmpty {
                value = set
            } else {
                value = fallback
            }
        } else {
            guard let set = environment[name] else {
                throw ConfigError(file: file, line: line,
                                  message: "environment variable \(name) is not set (set it, or write ${\(name):-default})")
            }
            value = set
        }
        if value.contains(where: { $0 == "\n" || $0 == "\r" || $0 == "\r\n" }) {
            throw ConfigError(file: file, line: line,
                              message: "the value of ${\(name)} contains a line break, which a config value cannot hold")
        }
        return value
    }

    /// Whether `name` is `[A-Za-z_][A-Za-z0-9_]*`.
    private static func isValidName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else {
            return false
        }
        return name.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
    }
}
