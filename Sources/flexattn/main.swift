import FlexAttention

print("flexattn: not yet")
