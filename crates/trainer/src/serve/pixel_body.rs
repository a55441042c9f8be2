//! The common request, one image as `{"pixels": [numbers]}`, read in one pass without
//! serde: under load, serde's visit of the 784 numbers one by one (and the growth of
//! their vector) was a fifth of the server's time. Any other body is left to serde,
//! which reads every form the API takes and words the errors.

/// The numbers of a body that is exactly `{"pixels": [n, n, ...]}`, JSON whitespace
/// allowed between tokens, each number finite as an `f32`; `None` for any other body.
pub(super) fn read(body: &[u8], expected: usize) -> Option<Vec<f32>> {
    let mut cursor = Cursor { body, at: 0 };
    cursor.token(b"{")?;
    cursor.token(b"\"pixels\"")?;
    cursor.token(b":")?;
    cursor.token(b"[")?;
    let mut pixels = Vec::with_capacity(expected);
    if cursor.token(b"]").is_none() {
        loop {
            pixels.push(cursor.number()?);
            if cursor.token(b",").is_none() {
                break;
            }
        }
        cursor.token(b"]")?;
    }
    cursor.token(b"}")?;
    cursor.skip_whitespace();
    (cursor.at == body.len()).then_some(pixels)
}

struct Cursor<'a> {
    body: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn skip_whitespace(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.body.get(self.at) {
            self.at += 1;
        }
    }

    /// Steps over `expected` after any whitespace, if it comes next.
    fn token(&mut self, expected: &[u8]) -> Option<()> {
        self.skip_whitespace();
        let rest = self.body.get(self.at..)?;
        rest.starts_with(expected)
            .then(|| self.at += expected.len())
    }

    /// The digits from here on, stepped over; how many there were.
    fn digits(&mut self) -> usize {
        let start = self.at;
        while self.body.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        self.at - start
    }

    /// A number of the form `0.d`, up to ten digits whose value is below 2^24
    /// (`0.5`, `0.003921569`), as a pixel in 0..1 is mostly written; `None`, and
    /// nothing stepped over, for any other. Such a number's digits and its power of
    /// ten are both exact as f32s, so their quotient is the nearest f32, which a full
    /// parse finds at several times the cost.
    fn short_fraction(&mut self) -> Option<f32> {
        let digits = self.body.get(self.at..)?.strip_prefix(b"0.")?;
        let count = digits.iter().take_while(|b| b.is_ascii_digit()).count();
        if count == 0 || count >= POWERS_OF_TEN.len() {
            return None;
        }
        if let Some(b'e' | b'E') = digits.get(count) {
            return None;
        }
        let value = digits[..count]
            .iter()
            .fold(0_u64, |value, digit| value * 10 + u64::from(digit - b'0'));
        let value = u32::try_from(value).ok().filter(|v| *v < 1 << 24)?;
        let value = value as f32 / POWERS_OF_TEN[count];
        self.at += 2 + count;
        Some(value)
    }

    /// A number as JSON writes them (`-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?`),
    /// rounded to the nearest `f32`.
    fn number(&mut self) -> Option<f32> {
        self.skip_whitespace();
        let start = self.at;
        // Most pixels are blank, and a 0 that goes on no further is read at a glance.
        if self.body.get(start) == Some(&b'0')
            && !matches!(
                self.body.get(start + 1),
                Some(b'0'..=b'9' | b'.' | b'e' | b'E')
            )
        {
            self.at += 1;
            return Some(0.0);
        }
        if let Some(value) = self.short_fraction() {
            return Some(value);
        }
        if self.body.get(self.at) == Some(&b'-') {
            self.at += 1;
        }
        let integer = self.at;
        match self.digits() {
            0 => return None,
            // JSON writes no leading zeros.
            1 => {}
            _ if self.body[integer] == b'0' => return None,
            _ => {}
        }
        if self.body.get(self.at) == Some(&b'.') {
            self.at += 1;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.body.get(self.at) {
            self.at += 1;
            if let Some(b'+' | b'-') = self.body.get(self.at) {
                self.at += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        let text = std::str::from_utf8(&self.body[start..self.at]).ok()?;
        let value: f32 = text.parse().ok()?;
        value.is_finite().then_some(value)
    }
}

/// 10^0 to 10^10, each exact as an f32.
const POWERS_OF_TEN: [f32; 11] = [1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10];

#[cfg(test)]
mod tests {
    use super::*;

    /// What serde reads from a body of the same shape.
    fn by_serde(body: &str) -> Option<Vec<f32>> {
        #[derive(serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            pixels: Vec<f32>,
        }
        serde_json::from_str::<Body>(body).ok().map(|b| b.pixels)
    }

    #[test]
    fn reads_what_serde_reads_from_numbers_as_clients_write_them() {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..200 {
            let numbers: Vec<String> = (0..784)
                .map(|_| match next() % 6 {
                    0 => "0".to_string(),
                    1 => "1".to_string(),
                    // As JavaScript and serde write an f32 (the shortest that reads back).
                    2 => serde_json::to_string(&((next() % 1_000_001) as f32 / 1e6))
                        .expect("an f32 writes as JSON"),
                    3 => format!("{:.3}", (next() % 1001) as f64 / 1000.0),
                    4 => format!("{}e-{}", next() % 100, next() % 3),
                    _ => format!("-{}.{}E+0", next() % 2, next() % 10),
                })
                .collect();
            let space = [" ", "", "\n", "\t ", "\r\n"][round % 5];
            let body = format!(
                "{space}{{{space}\"pixels\"{space}:{space}[{space}{}{space}]{space}}}{space}",
                numbers.join(&format!("{space},{space}"))
            );
            let read = read(body.as_bytes(), 784).expect("a pixels body");
            let serde = by_serde(&body).expect("a body serde reads");
            assert_eq!((read.len(), serde.len()), (784, 784));
            for ((number, ours), serde) in numbers.iter().zip(read).zip(serde) {
                assert_eq!(ours.to_bits(), serde.to_bits(), "{number}");
            }
        }
        assert_eq!(read(br#"{"pixels":[]}"#, 784), Some(vec![]));
    }

    #[test]
    fn every_number_is_the_nearest_f32_as_rusts_own_parse_finds_it() {
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = move |below: u64| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state % below
        };
        for _ in 0..100_000 {
            let digits = |count: u64, next: &mut dyn FnMut(u64) -> u64| {
                (0..count)
                    .map(|_| char::from(b'0' + next(10) as u8))
                    .collect::<String>()
            };
            let integer = match next(3) {
                0 => "0".to_string(),
                _ => format!("{}{}", 1 + next(9), digits(next(9), &mut next)),
            };
            let mut text = format!("{}{integer}", ["", "-"][next(2) as usize]);
            if next(3) > 0 {
                text += &format!(".{}", digits(1 + next(12), &mut next));
            }
            if next(3) == 0 {
                let sign = ["", "+", "-"][next(3) as usize];
                text += &format!("{}{sign}{}", ["e", "E"][next(2) as usize], next(40));
            }
            let body = format!(r#"{{"pixels":[{text}]}}"#);
            let expected: f32 = text.parse().expect("a JSON number");
            match read(body.as_bytes(), 1) {
                Some(read) => assert_eq!(read[0].to_bits(), expected.to_bits(), "{text}"),
                // Beyond the largest f32: left to serde, which names it out of range.
                None => assert!(expected.is_infinite(), "{text}"),
            }
        }
    }

    #[test]
    fn leaves_every_other_body_to_serde() {
        for body in [
            "",
            "{}",
            r#"{"pixels":[0.5],"image":"AAAA"}"#,
            r#"{"image":"AAAA","pixels":[0.5]}"#,
            r#"{"pixels":[0.5],"pixels":[0.5]}"#,
            r#"{"pixels":"0.5"}"#,
            r#"{"pixels":["0.5"]}"#,
            r#"{"pixels":[[0.5]]}"#,
            r#"{"pixels":[0.5,]}"#,
            r#"{"pixels":[,0.5]}"#,
            r#"{"pixels":[0.5 0.5]}"#,
            r#"{"pixels":[0.5]"#,
            r#"{"pixels":[0.5]} x"#,
            r#"[{"pixels":[0.5]}]"#,
            r#"{"pixel":[0.5]}"#,
            r#"{"pixels":[+1]}"#,
            r#"{"pixels":[01]}"#,
            r#"{"pixels":[-01]}"#,
            r#"{"pixels":[1.]}"#,
            r#"{"pixels":[.5]}"#,
            r#"{"pixels":[-]}"#,
            r#"{"pixels":[1e]}"#,
            r#"{"pixels":[1e+]}"#,
            r#"{"pixels":[NaN]}"#,
            r#"{"pixels":[Infinity]}"#,
            r#"{"pixels":[1e999]}"#,
            r#"{"pixels":[1e39]}"#,
            r#"{"pixels":[null]}"#,
        ] {
            assert_eq!(read(body.as_bytes(), 1), None, "{body}");
        }
    }
}
