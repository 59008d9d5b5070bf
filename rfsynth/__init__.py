"""RF-Synth: a procedural world of product-advertising images in which every case of the
paper (Available, Space Mismatch, Size Mismatch, Indistinctiveness, Shape Hallucination, and
RF1M's Unsuitable) has an exact definition (rules.py), and an oracle (oracle.py) that judges
any image of the world. It stands in for RF1M, which cannot be downloaded here.

    from rfsynth.scene import render_sample
    from rfsynth.oracle import judge
    s = render_sample(seed=0, size=128)
    judge(s.image, s.product, s.placement, s.category, damage=s.damage).label == s.label
"""
