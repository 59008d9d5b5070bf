"""The exact definitions of RF-Synth's cases: thresholds shared by the renderer (which builds
samples on either side of them) and the oracle (which measures images against them).

Lengths are fractions of the image side S, colours are RGB in 0..255, colour distance is
Euclidean. A sample gets the first case whose rule fires, in this order:

1. Unsuitable: the seller's cutout lacks a part: the world cut it or punched holes in it
   (``products.damage``; the sample's ``damage`` record says which and how much). The oracle
   takes this from the record, not from the pixels: since v2 a share of intact products
   (``HARD_MATTE_P``) come with hard matting, alpha jumping from 0 to 255 all round as real
   matted cutouts have, so a hard edge no longer means a cut. In v1 every natural edge was soft
   and the rule counted ``HARD_EDGE_MIN_PX`` hard-edge pixels; on every v1 sample and RF-Gen v1
   image the two rules agree (docs/RFSYNTH.md).
2. Indistinctiveness: low contrast, at least ``LOW_CONTRAST_FRAC`` of the pixels just outside
   the product (``CONTRAST_RING`` px) are within ``LOW_CONTRAST_DIST`` of one of the product's
   colours (its palette, below); or clutter, at least ``CLUTTER_FRAC`` of the pixels in the surrounding
   band (``CLUTTER_BAND`` S) sit on strong edges (gradient over ``CLUTTER_GRAD``).
3. Shape Hallucination: regions in the product's colours (within ``PALETTE_DIST`` of a colour
   that covers at least ``PALETTE_MIN_SHARE`` of the product) touch the product from outside
   with an area of at least ``HALLUCINATION_AREA`` of the product's. Not counted: slivers
   ``SLIVER_PX`` thin (the candidates are opened first: an inpainting seam along the outline is
   not a part), a region that reaches the top band (the wall), and a region spanning more than
   ``SURFACE_WIDTH`` times the product's width (the surface it stands on or the wall behind it;
   a grown pedestal is at most 1.4 times as wide).
3b. Shape Hallucination, a body drawn under the product (``oracle.pedestal``): a region of one
   colour that starts just under the middle of the base, is not wall, has wall beside the foot
   on at least one side, is ``PEDESTAL_MIN_WIDTH`` to ``PEDESTAL_MAX_WIDTH`` times the foot's
   width where it meets it and reaches ``PEDESTAL_MIN_HEIGHT`` of the product's height down,
   whatever its colour: a generator continues the product's outline downward in colours of
   its own, and a person sees a pedestal by its shape (audit set C).
3c. Shape Hallucination, a block in the colour of the part it touches (``oracle.foot_block``,
   round 5): a region that starts just under the middle of the base in a colour within
   ``FOOT_BLOCK_DIST`` of the product's foot (its opaque bottom rows) and of one of its main
   colours, is not wall, reaches neither side of the image, has wall beside its top on both
   sides (within ``FOOT_BLOCK_EDGE`` past its soft edge) and reaches ``FOOT_BLOCK_MIN_HEIGHT``
   of the product's height down, at any width: a black pot on a black plinth twice its width is
   the pot carried on downward to a person (audit set E, both labellers), which rule 3b's width
   bounds and rule 3's surface exception let pass. A block in another colour is a table. Since
   round 7 ``FOOT_BLOCK_DIST`` is 70, not 40: generators paint the block a shade darker or
   lighter than the foot, which people still read as its colour (sets A-H).
4. Space Mismatch: fewer than ``SUPPORT_MIN_FRAC`` of the product's contact columns rest on the
   surface; a column rests when the first non-wall pixel under the product's base lies within
   ``SUPPORT_GAP`` S of it (floating: a gap of wall; over an edge: wall all the way down). Wall
   there is the top band's colour in that column (product pixels left out) or the wall's colour
   beside the product above any table top (``LOCAL_WALL_ROWS``); non-wall means further than
   ``SUPPORT_WALL_DIST`` from each for ``SUPPORT_SOLID_PX`` pixels down (a fading halo is not a surface).
   Since round 8 that surface must be grounded: its region of non-wall pixels reaches the bottom or
   a side of the image. An island in the wall under the product (a generator's smudge or blob
   under a floating product) holds nothing up; every composed surface runs to the bottom.
4b. Indistinctiveness, incoherent surroundings: fewer than ``SCENE_COHERENCE_MIN`` of the
   pixels in the surrounding band are explained by the scene the world can contain: after a
   box blur of ``SCENE_SMOOTH`` S, within ``SCENE_COHERENCE_DIST`` of the wall's colour in their
   column or of the surface's colour under the product (or its front-face and shadow shades);
   pixels in the product's own colours and reference objects (also those painted a little off
   their reserved colour, and a ``REFERENCE_EDGE`` ring around them, where a generator blends
   them into the wall) are left out (rules 3 and 5 judge them). Composed scenes are coherent (in 800 composed Available and Size Mismatch samples at
   64 and 128 px the lowest is 0.79; about one in 2,000 falls just below, where a dark wall
   meets a light surface next to the product: docs/RFSYNTH.md); a generator's mush of colours
   around the product is not (0.23 to 0.73 in the embedded generator's early images), and a
   person would not use it. The bar, ``SCENE_COHERENCE_MIN``, is 0.65 since the third rule round:
   at 0.75 a person called a third of the images it caught usable (docs/RFSYNTH.md).
5. Size Mismatch (a reference object is a region within ``REFERENCE_DIST`` of its reserved colour
   that does not reach the top band and covers at most ``REFERENCE_MAX_AREA``; since round 5 it
   must stand on the surface, its lowest row not above where the wall ends (``oracle.horizon``),
   and its height includes its saturated soft edge within ``REFERENCE_SOFT_DIST``, as a person
   measures a blurred blob, and since round 7 runs on into the blend with the background, to its
   middle and since round 9 to ``REFERENCE_BLEND_STOP`` of it (``REFERENCE_BLUR_REACH``, ``REFERENCE_BLEND_DIST``); the largest standing one is used; since round 6 a saturated blob
   further off is read as the reserved colour it is nearest to, within ``REFERENCE_HUE_DIST``
   (a mint blob is the book stack, as people read it: ``oracle.reference_hues``), and a blob
   shorter than the world's smallest reference, max(``REFERENCE_MIN_PX``,
   ``REFERENCE_MIN_HEIGHT`` S), is a smudge): the real height the reference object implies for the product,
   ``product_px / (ref_px / ref_cm)``, lies outside ``[lo / SIZE_TOLERANCE, hi * SIZE_TOLERANCE]``
   of its category's height range. No reference object: nothing to contradict.
6. Available: none of the above.
"""

HARD_EDGE_MIN_PX = 3  # v1's rule 1, and the least hard edge a v1 cut must leave to be drawn
# v2: the share of products whose cutout has hard matting (binary alpha), in composed scenes and
# RF-Gen alike; and the least share of a hard-matted product a cut or holes must remove, below
# which the renderer draws again (a cut through a thin part leaves too little to see).
HARD_MATTE_P = 0.3
DAMAGE_MIN_FRAC = 0.02
# v2: the share of products with a printed label: a patch of many colours and fine detail, as a
# product photo has (RF-Synth's own products are flat colours with shading, stripes or dots).
PRINTED_P = 0.3

CONTRAST_RING = 2  # px
LOW_CONTRAST_DIST = 40.0
LOW_CONTRAST_FRAC = 0.5
CLUTTER_BAND = 0.12  # of S
CLUTTER_GRAD = 60.0
CLUTTER_FRAC = 0.2

PALETTE_DIST = 32.0
PALETTE_MIN_SHARE = 0.12
HALLUCINATION_AREA = 0.05

WALL_BAND = 0.1  # the top rows are wall: the reference for 'wall-coloured'
WALL_DIST = 30.0
SUPPORT_GAP = 0.035  # of S
SUPPORT_MIN_FRAC = 0.5

SCENE_COHERENCE_DIST = 40.0
SCENE_COHERENCE_MIN = 0.65
SCENE_SMOOTH = 1 / 32  # of S: the box blur applied before, so that material textures average out
SURFACE_SHADES = (1.0, 0.78, 0.78 * 0.78, 0.72)  # top face, front face, shadowed front, contact shadow

SIZE_TOLERANCE = 1.5
# A pixel belongs to a reference object within this of its colour. 65, not 45: generators
# paint the reserved colours a little off (mint, yellow-green), and the nearest colour anything
# else in the world has is 93 away (yellow to the stool's).
REFERENCE_DIST = 65.0
REFERENCE_LIKE_DIST, REFERENCE_LIKE_CHROMA = 75.0, 150.0  # rule 4b leaves such pixels out (oracle.reference_like)
# Rule 5 measures a reference's height with its soft edge too: saturated pixels (chroma at least
# REFERENCE_LIKE_CHROMA) within this of its colour (oracle.standing_references).
REFERENCE_SOFT_DIST = 85.0
REFERENCE_HUE_DIST = 110.0
REFERENCE_MIN_PX, REFERENCE_MIN_HEIGHT = 5, 0.05  # the renderer's smallest reference (scene._reference)
# Rule 5 measures a blurred blob as a person does (oracle.blob_rows): in each column, out from
# the blob into its blend with the background REFERENCE_BLUR_REACH S further out, through pixels
# within REFERENCE_BLEND_DIST of the line between the two colours (anything else ends the edge),
# while a pixel is less than REFERENCE_BLEND_STOP of the way to the background. Round 7 stopped
# at the blend's middle (0.5); round 9 (sets A-J) follows the legend, "a blob's full height, its
# soft edge included", as set J's labellers measured (~20 px where round 8 measured 16-17).
# 0.8 and beyond run into a floor behind a composed stool (seed 707070, sample 975).
REFERENCE_BLUR_REACH = 1 / 8  # of S
REFERENCE_BLEND_DIST = 45.0
REFERENCE_BLEND_STOP = 0.75
REFERENCE_FRINGE = 1 / 32  # of S: how far that fringe reaches out from the blob's core
REFERENCE_EDGE = 1 / 16  # of S: rule 4b also leaves out this ring around reference objects (soft edges)
REFERENCE_MAX_AREA = 0.2  # of the image: a larger region of a reserved colour is a wall, not an object
# The renderer keeps clutter colours this far from the reserved ones (twice the first version's
# REFERENCE_DIST; a constant of its own, so that the oracle's tolerance can change without
# moving the benchmark's pixels).
CLUTTER_RESERVED_DIST = 90.0

# Shape Hallucination: a region in the product's colours under its base that spans wider than
# this times the product's width (plus a margin of S) is the surface it stands on, not a pedestal.
SURFACE_WIDTH = 1.6
SURFACE_MARGIN = 0.05
# Shape Hallucination, 3b: a body drawn under the product, continuing it (oracle.pedestal): one
# colour (within PEDESTAL_DIST after the blur of rule 4b), not wall, with wall beside the foot on
# at least one side (a surface on both sides is what the product stands on), between
# PEDESTAL_MIN_WIDTH and PEDESTAL_MAX_WIDTH times the foot's width where it meets the product
# (composed tables and plinths are wider), reaching at least PEDESTAL_MIN_HEIGHT of the
# product's height down.
PEDESTAL_DIST = 30.0
PEDESTAL_MAX_WIDTH = 1.2
PEDESTAL_MIN_WIDTH = 0.75  # narrower: the edge of a table the product hangs over (Space Mismatch)
PEDESTAL_MIN_HEIGHT = 0.3
# Shape Hallucination, 3c: a block under the product in the colour of the part it touches
# (oracle.foot_block), reaching neither side of the image, at least FOOT_BLOCK_MIN_HEIGHT of the
# product's height down. 70: the block is often a shade off the foot's colour (round 7).
FOOT_BLOCK_DIST = 70.0
FOOT_BLOCK_MIN_HEIGHT = 0.3
FOOT_BLOCK_EDGE = 0.15  # of S: how far past the block's blurred edge the wall must show
# Shape Hallucination: regions this thin (px, at any S) are the inpainting's blend seam, not parts.
SLIVER_PX = 1  # px
# Space Mismatch: the wall beside the product between these heights above its base (of S) is
# wall too: below the top of any table top (a top face rises at most 0.06 S above the base).
LOCAL_WALL_ROWS = (0.3, 0.08)
# ... and the surface under a column is the first pixel further than SUPPORT_WALL_DIST from every
# wall colour there that stays so for SUPPORT_SOLID_PX pixels down (composed surfaces are at least
# 70 from the wall; a generator's halo under a floating product is nearer and fades).
SUPPORT_WALL_DIST = 45.0
SUPPORT_SOLID_PX = 5

# What the renderer keeps between a case and its neighbours, so labels are not ambiguous
# by accident (borderline cases are made on purpose, by severity).
SAFE_COLOUR_DIST = 75.0  # background colours from the product's colours in clean scenes

ORDER = ("Unsuitable", "Indistinctiveness", "Shape Hallucination", "Space Mismatch",
         "Size Mismatch", "Available")
