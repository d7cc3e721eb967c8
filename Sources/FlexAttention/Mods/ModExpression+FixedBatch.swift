/// Mods specialised to one batch index, for work that runs each sequence of a batch as a batch of its own (packed
/// sequences): the run has batch 1, yet the mod must see the sequence's index as `b`.
///
/// `b` becomes an Int literal. Literals are lifted into the arguments (``ModArguments``), so every index gives the
/// same ``ModExpression/structuralKey`` and a compiled kernel serves them all; only the argument values differ.
extension ModNode {
    /// This expression with every `b` replaced by the literal `index`, as one shared node (one argument slot);
    /// itself when it does not read `b`. One pass over ``uniqueNodes`` (``rebuilt(_:)``): linear, no recursion.
    func fixingBatch(_ index: Int) -> ModNode {
        reads(.b) ? replacing(.b, with: .int(index)) : self
    }
}

extension MaskMod {
    /// This mask with `b` fixed to `index`.
    func fixingBatch(_ index: Int) -> MaskMod { MaskMod(node: expression.node.fixingBatch(index)) }
}

extension ScoreMod {
    /// This score mod with `b` fixed to `index`; its tables (and the names their gradients go by) are unchanged.
    func fixingBatch(_ index: Int) -> ScoreMod { ScoreMod(node: expression.node.fixingBatch(index)) }
}
