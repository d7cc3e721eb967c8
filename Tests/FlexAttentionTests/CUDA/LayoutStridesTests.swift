import Testing
@testable import FlexAttention

/// `DeviceTensor(device:dtype:shape:layout:stream:)` and `Tensor(zeros:dtype:layout:)` allocate by one stride rule;
/// these pin it down without a GPU.
@Suite("Layout strides")
struct LayoutStridesTests {
    @Test func bshdSwapsHeadsAndSequence() throws {
        // [B, H, S, D] = [2, 3, 5, 8] in memory as B, S, H, D: a head step is D, a sequence step H × D.
        #expect(Tensor.strides([2, 3, 5, 8], layout: .bshd) == [120, 8, 24, 1])
        #expect(try Tensor(zeros: [2, 3, 5, 8], layout: .bshd).strides == [120, 8, 24, 1])
    }

    @Test func bhsdIsRowMajor() {
        #expect(Tensor.strides([2, 3, 5, 8], layout: .bhsd) == [120, 40, 8, 1])
        #expect(Tensor.strides([7], layout: .bhsd) == [1])
    }

    @Test func bshdNeedsFourAxes() {
        #expect(Tensor.strides([3, 5, 8], layout: .bshd) == nil)
        #expect(throws: FlexAttentionError.self) { try Tensor(zeros: [3, 5, 8], layout: .bshd) }
    }
}
