/// SplitMix64 (Steele, Lea and Flood 2014): the one seeded generator behind every random number
/// Loupe draws (seeded weights, SmoothGrad's noise on the CPU reference and in random.cl, the
/// optimization engine's transforms and noise, the tests' inputs), so that a seed means the same
/// numbers everywhere. Counter-based use: `mix(key + i * golden)`; sequential use: `next()`.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    /// The increment between counters, 2^64 / the golden ratio.
    public static let golden: UInt64 = 0x9E37_79B9_7F4A_7C15

    /// SplitMix64's finalizer: a bijective mix of all 64 bits.
    @inline(__always)
    public static func mix(_ z: UInt64) -> UInt64 {
        var z = z
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// The counter: `next()` adds `golden` to it and returns its mix.
    public private(set) var state: UInt64
    /// A generator whose first number is mix(seed + golden).
    public init(seed: UInt64) { state = seed }

    /// The next value of the sequence: mix(state += golden).
    public mutating func next() -> UInt64 {
        state &+= SplitMix64.golden
        return SplitMix64.mix(state)
    }
}
