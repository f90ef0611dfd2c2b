//! Random numbers for the retries' jitter, the load balancer's pick and the random bits of
//! instance IDs, from the standard library's random hash keys (drawn from the operating system
//! once per thread, then stepped for each hasher): unpredictable enough for spreading load and
//! telling instances apart, not for secrets. No dependency for it.

use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};

/// 64 random bits.
pub(crate) fn u64() -> u64 {
    static DRAWN: AtomicU64 = AtomicU64::new(0);
    RandomState::new().hash_one(DRAWN.fetch_add(1, Ordering::Relaxed))
}

/// 128 random bits.
pub(crate) fn u128() -> u128 {
    (u128::from(u64()) << 64) | u128::from(u64())
}

/// A number in `[0, 1)`.
pub(crate) fn unit() -> f64 {
    // The top 53 bits: every value a f64 in [0, 1) holds at that spacing.
    (u64() >> 11) as f64 / (1u64 << 53) as f64
}

/// A number in `0..n`; `n` must not be zero.
pub(crate) fn below(n: usize) -> usize {
    // The bias of a modulo is below 2^-40 for any n this crate draws from.
    (u64() % n as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_differ_and_stay_in_range() {
        let draws: std::collections::BTreeSet<u64> = (0..1000).map(|_| u64()).collect();
        assert_eq!(draws.len(), 1000, "no repeats in 1000 draws of 64 bits");
        assert!((0..1000).map(|_| unit()).all(|x| (0.0..1.0).contains(&x)));
        assert!((0..1000).all(|_| below(3) < 3));
        // Every value of a small range comes up.
        let seen: std::collections::BTreeSet<usize> = (0..1000).map(|_| below(4)).collect();
        assert_eq!(seen.len(), 4);
        assert_ne!(u128() >> 64, u128() >> 64);
    }
}
