/// What to compute besides plain softmax attention.
public struct AttentionOptions: Sendable {
    /// Multiplies `q · k`; `nil` means `1 / √D`.
    public var scale: Float?
    /// Keep only `q >= kv` (indices from 0, top-left aligned), skipping the tiles it removes entirely.
    public var isCausal: Bool

    /// - Parameters:
    ///   - scale: multiplies `q · k`; `nil` means `1 / √D`.
    ///   - isCausal: keep only `q >= kv`.
    public init(scale: Float? = nil, isCausal: Bool = false) {
        self.scale = scale
        self.isCausal = isCausal
    }
}
