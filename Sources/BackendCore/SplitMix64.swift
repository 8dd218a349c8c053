import Foundation

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

extension SplitMix64 {
    /// The noise stream of `seed` (SmoothGrad's noise on the CPU reference, the optimization
    /// engine's transforms, jitter and initial images): the sequence of seed + 0x5EED, the key
    /// random.cl's noisy copies use too, so that noise and seeded weights of the same seed differ.
    public init(noiseSeed seed: UInt64) { self.init(seed: seed &+ 0x5EED) }

    /// Uniform in (0, 1): the top 53 bits of the next value, centred in their interval.
    public mutating func uniform() -> Double {
        (Double(next() >> 11) + 0.5) / Double(1 << 53)
    }

    /// Uniform in 0 ..< count.
    public mutating func index(_ count: Int) -> Int { Swift.min(Int(uniform() * Double(count)), count - 1) }

    /// `count` Gaussian numbers of mean 0 and standard deviation `sigma` (Box-Muller, one pair of
    /// uniforms per number).
    public mutating func normal(_ count: Int, sigma: Float) -> [Float] {
        (0..<count).map { _ in Float((-2 * log(uniform())).squareRoot() * cos(2 * Double.pi * uniform())) * sigma }
    }
}
