"""What exists in RF-Synth: product categories with real-world sizes, colours, materials,
brands and the words of captions and prompts.

Sizes are real heights in centimetres; they are what makes Size Mismatch checkable: a scene's
reference objects have known heights too, so an image implies a real size for its product.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Category:
    name: str
    zh: str
    height_cm: tuple[float, float]  # real height range
    aspect: tuple[float, float]  # width / height range of the silhouette
    shape: str  # silhouette family drawn by products.py
    size_class: str  # small, medium, large
    attributes: tuple[str, ...] = ()


CATEGORIES: tuple[Category, ...] = (
    Category("lipstick", "口红", (7, 9), (0.25, 0.32), "lipstick", "small", ("matte", "velvet", "glossy")),
    Category("perfume", "香水", (9, 14), (0.55, 0.8), "bottle", "small", ("eau de parfum", "floral", "50ml")),
    Category("mug", "马克杯", (9, 12), (0.8, 1.0), "mug", "small", ("ceramic", "350ml", "handmade")),
    Category("skincare jar", "面霜", (5, 8), (1.1, 1.5), "jar", "small", ("moisturizing", "50g", "repair")),
    Category("vase", "花瓶", (25, 40), (0.45, 0.65), "vase", "medium", ("glazed", "nordic", "ceramic")),
    Category("speaker", "音箱", (18, 30), (0.6, 0.9), "speaker", "medium", ("bluetooth", "bass", "wireless")),
    Category("table lamp", "台灯", (38, 55), (0.5, 0.7), "table_lamp", "medium", ("LED", "dimmable", "eye-care")),
    Category("handbag", "手提包", (22, 32), (1.1, 1.4), "handbag", "medium", ("leather", "tote", "crossbody")),
    Category("floor lamp", "落地灯", (140, 175), (0.28, 0.38), "floor_lamp", "large", ("standing", "LED", "modern")),
    Category("massage chair", "按摩椅", (100, 125), (0.7, 0.9), "massage_chair", "large", ("zero gravity", "full body", "heated")),
    Category("cabinet", "柜子", (90, 160), (0.55, 0.9), "cabinet", "large", ("solid wood", "storage", "3-door")),
    Category("potted plant", "绿植盆栽", (60, 110), (0.5, 0.75), "plant", "large", ("indoor", "evergreen", "large")),
)

CATEGORY_BY_NAME = {c.name: c for c in CATEGORIES}

# Named colours (RGB) for products, walls and surfaces, with their Chinese names.
COLOURS: dict[str, tuple[tuple[int, int, int], str]] = {
    "red": ((196, 36, 44), "红色"), "crimson": ((150, 20, 50), "绯红"),
    "orange": ((226, 120, 30), "橙色"), "yellow": ((225, 190, 60), "黄色"),
    "olive": ((120, 128, 40), "橄榄绿"), "green": ((46, 140, 70), "绿色"),
    "teal": ((24, 128, 130), "青色"), "sky blue": ((110, 170, 225), "天蓝"),
    "blue": ((36, 70, 180), "蓝色"), "navy": ((24, 34, 88), "藏青"),
    "purple": ((116, 56, 160), "紫色"), "pink": ((232, 130, 170), "粉色"),
    "brown": ((120, 76, 40), "棕色"), "beige": ((222, 205, 170), "米色"),
    "white": ((238, 238, 234), "白色"), "grey": ((128, 128, 128), "灰色"),
    "black": ((30, 30, 32), "黑色"), "gold": ((200, 160, 60), "金色"),
}
PRODUCT_COLOURS = tuple(c for c in COLOURS if c not in ("white",))
WALL_COLOURS = ("beige", "white", "sky blue", "pink", "grey", "olive", "teal", "yellow", "green", "navy")

# Support surfaces and their materials (texture drawn by scene.py).
SURFACES = ("wooden table", "marble table", "floor", "podium", "shelf", "fabric cloth")
MATERIALS = {
    "wood": ((150, 100, 60), "grain"), "oak": ((190, 150, 100), "grain"),
    "marble": ((225, 222, 215), "veins"), "concrete": ((160, 160, 155), "speckle"),
    "linen": ((210, 195, 170), "weave"), "walnut": ((95, 60, 35), "grain"),
}
LIGHTING = ("soft daylight", "warm light", "studio light", "evening light", "bright sunlight")
DECORATIONS = ("picture frame", "potted fern", "window", "wall shelf", "none")

# Reference objects: real height in cm, and one reserved, saturated colour each that nothing
# else in the world uses, so that the oracle can find them in any image (see oracle.py).
REFERENCES = {
    "cup": {"height_cm": 9.0, "aspect": 0.8, "colour": (255, 0, 255)},
    "book stack": {"height_cm": 16.0, "aspect": 1.4, "colour": (0, 255, 255)},
    "stool": {"height_cm": 45.0, "aspect": 0.8, "colour": (255, 255, 0)},
    "door": {"height_cm": 200.0, "aspect": 0.45, "colour": (0, 255, 0)},
}
# Which references suit which product sizes (a lipstick next to a door is not a photo).
REFERENCE_FOR_SIZE = {"small": ("cup", "book stack"), "medium": ("book stack", "stool"),
                      "large": ("stool", "door")}

BRANDS = ("Lumi", "NOVA", "Artisan", "Kairo", "云朵", "北屿", "MUJO", "Vela", "Oaken", "素然",
          "Halo", "Pinecrest", "青木", "Solenne")
FILLERS = ("2024新款", "官方旗舰店", "正品", "包邮", "限时特惠", "送礼", "new arrival", "hot sale",
           "gift box", "家用", "ins风", "爆款")
