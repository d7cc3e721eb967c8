extension Float {
    /// log2(e): converts natural-log units to base 2, the CPU softmax's units.
    static let log2e: Float = 1.442_695_04
    /// ln(2): converts base-2 log units back to natural log.
    static let ln2: Float = 0.693_147_18
}
