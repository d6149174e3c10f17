//! Arbitrary bytes as an HR import CSV: the parser answers rows and rejects, or refuses the
//! file with a message; it never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(read) = qi::hr::read_csv(data) {
        for reject in &read.rejects {
            assert!(reject.line >= 2, "a rejected line is a data line");
        }
    }
});
