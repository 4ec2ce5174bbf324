//! The engine: a splitmix64 PRNG, the run loop with its budget and seed, a libFuzzer-style byte
//! mutator, and the small generators every target shares.

use std::fmt::Debug;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::{Duration, Instant};

/// splitmix64 (Vigna): tiny, fast, and good enough to drive a fuzzer deterministically.
pub struct Rng(u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True one time in `n`.
    pub fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len())]
    }

    pub fn pick_str(&mut self, xs: &[&'static str]) -> &'static str {
        xs[self.below(xs.len())]
    }

    /// A length that is usually small and sometimes large: most bugs need short inputs, a few
    /// need long ones.
    pub fn len(&mut self, small: usize, large: usize) -> usize {
        if self.one_in(16) {
            self.below(large + 1)
        } else {
            self.below(small + 1)
        }
    }
}

/// Seconds per target: `FUZZ_SECS`, default 1.
pub fn budget() -> Duration {
    std::env::var("FUZZ_SECS")
        .ok()
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s >= 0.0)
        .map_or(Duration::from_secs(1), Duration::from_secs_f64)
}

/// The seed for `name`: `FUZZ_SEED` (decimal or 0x-hex) mixed with the name, so targets
/// run different sequences but each is reproducible.
pub fn seed(name: &str) -> u64 {
    let base = std::env::var("FUZZ_SEED")
        .ok()
        .and_then(|s| match s.trim().strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => s.trim().parse().ok(),
        })
        .unwrap_or(0x005e_ed0f_u64 << 20);
    // FNV-1a of the name.
    name.bytes().fold(base ^ 0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    })
}

/// Runs `check` on inputs from `gen` until the budget is spent (and at least `MIN_ITERATIONS`
/// times), failing with the iteration and the input on the first panic. Returns the count.
pub fn fuzz<T: Debug>(
    name: &str,
    mut generate: impl FnMut(&mut Rng) -> T,
    check: impl Fn(&T),
) -> u64 {
    const MIN_ITERATIONS: u64 = 500;
    let seed = seed(name);
    let mut rng = Rng(seed);
    let budget = budget();
    let start = Instant::now();
    let mut n: u64 = 0;
    loop {
        let input = generate(&mut rng);
        if catch_unwind(AssertUnwindSafe(|| check(&input))).is_err() {
            panic!("fuzz {name}: seed {seed:#x}, iteration {n}: failed on input {input:?}");
        }
        n += 1;
        if n >= MIN_ITERATIONS && n.is_multiple_of(64) && start.elapsed() >= budget {
            break;
        }
    }
    let secs = start.elapsed().as_secs_f64();
    eprintln!(
        "fuzz {name}: {n} iterations in {secs:.1} s ({:.0}/s), seed {seed:#x}",
        n as f64 / secs.max(1e-9)
    );
    n
}

/// Bytes that often matter to text parsers.
pub const INTERESTING: &[u8] =
    b"\0\x01\t\n\r \"#%'()+,-./0123456789:;=?@[\\]_`{}~\x7f\x80\xc3\xe2\xf0\xff";

/// Multi-byte characters: slicing a `str` through one of them panics.
pub const WIDE: &[&str] = &[
    "\u{e9}",
    "\u{20ac}",
    "\u{1d11e}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{feff}",
    "\u{661}",
    "\u{ff10}",
    "\u{130}",
];

/// libFuzzer-style mutations of `seed`, using `dict` tokens and splicing with `others`.
pub fn mutate(rng: &mut Rng, seed: &[u8], dict: &[&str], others: &[&str]) -> Vec<u8> {
    let mut v = seed.to_vec();
    let rounds = if rng.one_in(8) {
        1 + rng.below(32)
    } else {
        1 + rng.below(4)
    };
    for _ in 0..rounds {
        let at = rng.below(v.len() + 1);
        match rng.below(13) {
            0 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] ^= 1 << rng.below(8);
            }
            1 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = rng.next() as u8;
            }
            2 if !v.is_empty() => {
                let i = rng.below(v.len());
                v[i] = *rng.pick(INTERESTING);
            }
            3 if !dict.is_empty() => {
                let t = rng.pick(dict).as_bytes();
                v.splice(at..at, t.iter().copied());
            }
            4 if !v.is_empty() => {
                let end = (at + 1 + rng.below(8)).min(v.len());
                v.drain(at.min(end)..end);
            }
            5 if !v.is_empty() => {
                let from = rng.below(v.len());
                let to = (from + 1 + rng.below(16)).min(v.len());
                let chunk: Vec<u8> = v[from..to].to_vec();
                v.splice(at..at, chunk);
            }
            6 => {
                let n = 1 + rng.below(8);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at..at, bytes);
            }
            7 if !others.is_empty() => {
                let other = rng.pick(others).as_bytes();
                let cut = rng.below(other.len() + 1);
                v.truncate(at);
                v.extend_from_slice(&other[cut..]);
            }
            8 => v.truncate(at),
            9 => {
                let w = rng.pick(WIDE).as_bytes();
                v.splice(at..at, w.iter().copied());
            }
            10 if !dict.is_empty() && !v.is_empty() => {
                let end = (at + rng.below(6)).min(v.len());
                let t = rng.pick(dict).as_bytes();
                v.splice(at.min(end)..end, t.iter().copied());
            }
            11 if rng.one_in(8) && !v.is_empty() => {
                // Length blow-up: one chunk repeated up to ~16 KiB.
                let from = rng.below(v.len());
                let to = (from + 1 + rng.below(8)).min(v.len());
                let chunk = v[from..to].to_vec();
                let times = 1 + rng.below(16 * 1024 / chunk.len().max(1));
                let big: Vec<u8> = chunk
                    .iter()
                    .copied()
                    .cycle()
                    .take(chunk.len() * times)
                    .collect();
                v.splice(at..at, big);
            }
            _ => {
                let t = rng.pick(dict).as_bytes();
                v.extend_from_slice(t);
            }
        }
    }
    v
}

/// Text for a `&str` target: mostly valid UTF-8 through lossy conversion, which also plants
/// U+FFFD (three bytes) where a mutation broke a sequence.
pub fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Random bytes, a short or occasionally long run.
pub fn random_bytes(rng: &mut Rng) -> Vec<u8> {
    let n = rng.len(64, 4096);
    (0..n).map(|_| rng.next() as u8).collect()
}

/// A run of characters drawn from `alphabet` plus, now and then, anything at all.
pub fn word(rng: &mut Rng, alphabet: &str, max: usize) -> String {
    let chars: Vec<char> = alphabet.chars().collect();
    let n = rng.len(max, max * 8);
    (0..n)
        .map(|_| {
            if rng.one_in(24) {
                rng.pick(WIDE).chars().next().unwrap_or('x')
            } else if rng.one_in(32) {
                char::from(*rng.pick(INTERESTING) & 0x7f)
            } else {
                *rng.pick(&chars)
            }
        })
        .collect()
}

/// A number as text: ordinary, boundary, or not quite a number.
pub fn number(rng: &mut Rng) -> String {
    match rng.below(10) {
        0 => rng
            .pick(&[
                "0",
                "1",
                "65534",
                "65535",
                "65536",
                "4294967295",
                "4294967296",
            ])
            .to_string(),
        1 => rng
            .pick(&[
                "-1", "+1", " 1", "1 ", "0x10", "1e3", "", "00", "\u{661}", "\u{ff11}",
            ])
            .to_string(),
        2 => (rng.next() as u32).to_string(),
        3 => "9".repeat(1 + rng.below(40)),
        _ => rng.below(70_000).to_string(),
    }
}

/// Runs the generator of structured inputs, or mutates one of them, or mutates a seed.
pub fn structured_or_mutated(
    rng: &mut Rng,
    structured: impl Fn(&mut Rng) -> String,
    seeds: &[&str],
    dict: &[&str],
) -> String {
    match rng.below(8) {
        0..=2 => structured(rng),
        3..=5 => {
            let base = structured(rng);
            text(mutate(rng, base.as_bytes(), dict, seeds))
        }
        6 => {
            let base = rng.pick(seeds).to_string();
            text(mutate(rng, base.as_bytes(), dict, seeds))
        }
        _ => text(random_bytes(rng)),
    }
}
