"""Names of the whole-frame weather and lighting conditions (shared by the config and the weather adapter,
so validating a config never imports albumentations)."""

CONDITIONS = ("rain", "fog", "snow", "sun_flare", "shadow", "night", "overcast")
