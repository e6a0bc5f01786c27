/// Number and date text shared by the writer, the reader and document-id keys.
extension ExtendedJSON {
    private static let millisecondsPerDay: Int64 = 86_400_000

    /// Shortest round-trip text of a finite double as a JSON number; integral values keep a `.0` (`1.0`, `-0.0`).
    public static func relaxedNumber(_ value: Double) -> String {
        let text = value.description
        return isIntegral(text.utf8) ? text + ".0" : text
    }

    /// Whether the shortest text of a finite double (`-`, digits, `.`, an exponent) has neither a fraction nor an
    /// exponent, and so takes `.0` in relaxed Extended JSON.
    static func isIntegral<C: Collection<UInt8>>(_ text: C) -> Bool {
        !text.contains { $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "e") }
    }

    /// `YYYY-MM-DDTHH:MM:SS.mmmZ` for milliseconds since the epoch, or `nil` when the year is outside `years`
    /// (or outside 0...9999, which four digits hold).
    public static func isoDate(milliseconds: Int64, years: ClosedRange<Int> = 0...9999) -> String? {
        withISODate(milliseconds: milliseconds, years: years) { String(decoding: $0, as: UTF8.self) }
    }

    /// Calls `body` with the UTF-8 text of `isoDate(milliseconds:years:)` and returns what it returns; `nil`
    /// (without calling it) outside `years`.
    static func withISODate<R>(milliseconds: Int64, years: ClosedRange<Int>, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R? {
        let (days, msOfDayRaw) = milliseconds.quotientAndRemainder(dividingBy: millisecondsPerDay)
        let dayNumber = msOfDayRaw < 0 ? days - 1 : days
        let msOfDay = msOfDayRaw < 0 ? msOfDayRaw + millisecondsPerDay : msOfDayRaw
        let (year, month, day) = civil(fromDays: dayNumber)
        guard years.contains(year), (0...9999).contains(year) else { return nil }
        let ms = Int(msOfDay % 1000)
        let totalSeconds = Int(msOfDay / 1000)
        // Every part is at least 0 and fits its width here; the text is written into 24 bytes on the stack.
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 24) { text in
            var index = 0
            func digits(_ value: Int, _ width: Int, then separator: UInt8) {
                var rest = value, position = index + width
                while position > index {
                    position -= 1
                    text[position] = UInt8(truncatingIfNeeded: 0x30 + rest % 10)
                    rest /= 10
                }
                text[index + width] = separator
                index += width + 1
            }
            digits(year, 4, then: UInt8(ascii: "-"))
            digits(month, 2, then: UInt8(ascii: "-"))
            digits(day, 2, then: UInt8(ascii: "T"))
            digits(totalSeconds / 3600, 2, then: UInt8(ascii: ":"))
            digits(totalSeconds / 60 % 60, 2, then: UInt8(ascii: ":"))
            digits(totalSeconds % 60, 2, then: UInt8(ascii: "."))
            digits(ms, 3, then: UInt8(ascii: "Z"))
            return body(UnsafeBufferPointer(rebasing: text[..<index]))
        }
    }

    /// Milliseconds since the epoch of `YYYY-MM-DDTHH:MM:SS[.fff…](Z|±HH:MM|±HHMM)`; `nil` if the text is not that.
    public static func parseISODate(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        var i = 0
        func number(_ width: Int) -> Int? {
            guard i + width <= b.count else { return nil }
            var value = 0
            for c in b[i..<i + width] {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(c) else { return nil }
                value = value * 10 + Int(c - UInt8(ascii: "0"))
            }
            i += width
            return value
        }
        func expect(_ c: Character) -> Bool {
            guard i < b.count, b[i] == c.asciiValue else { return false }
            i += 1
            return true
        }
        guard let year = number(4), expect("-"), let month = number(2), expect("-"), let day = number(2),
              expect("T"), let hour = number(2), expect(":"), let minute = number(2), expect(":"),
              let second = number(2),
              (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61 else { return nil }
        var ms = 0
        if expect(".") {
            var digits = 0
            while i < b.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(b[i]) {
                if digits < 3 { ms = ms * 10 + Int(b[i] - UInt8(ascii: "0")) }
                digits += 1
                i += 1
            }
            guard digits > 0 else { return nil }
            for _ in digits..<max(digits, 3) { ms *= 10 }
        }
        var offsetMinutes = 0
        if expect("Z") {
            offsetMinutes = 0
        } else if i < b.count, b[i] == UInt8(ascii: "+") || b[i] == UInt8(ascii: "-") {
            let sign = b[i] == UInt8(ascii: "-") ? -1 : 1
            i += 1
            guard let h = number(2) else { return nil }
            _ = expect(":")
            guard let m = number(2) else { return nil }
            offsetMinutes = sign * (h * 60 + m)
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        let days = Int64(daysFromCivil(year: year, month: month, day: day))
        let seconds = Int64(hour * 3600 + minute * 60 + second - offsetMinutes * 60)
        return days * millisecondsPerDay + seconds * 1000 + Int64(ms)
    }

    /// Year, month, day of a day number counted from 1970-01-01 (proleptic Gregorian calendar).
    private static func civil(fromDays days: Int64) -> (Int, Int, Int) {
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        return (Int(year), Int(month), Int(day))
    }

    /// Day number counted from 1970-01-01 of a proleptic Gregorian date.
    private static func daysFromCivil(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        return era * 146_097 + doe - 719_468
    }
}
