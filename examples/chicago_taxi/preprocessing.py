"""The taxi ``preprocessing_fn``: TFX's Chicago taxi Transform module, ported by changing its
import (TFX's ``_fill_in_missing`` helper is ``tft.fill_missing`` here).

Dense floats are z-scored, the two string columns get a vocabulary (top 1,000 values, 10
OOV buckets), the four coordinates are bucketized into 10 quantile buckets, and the
categorical integers pass through with missing values filled. The label ``tips_xf`` is 1
when the passenger tipped more than 20 % of the fare. Analyzers are fitted on the train
split once; the bundle applies the same graph to raw trips when it predicts. ``bench/``'s
Transform benchmark runs this module too.

    transform = Transform(examples=..., schema=..., module_file="preprocessing.py")
"""

import conveyor.transform as tft

# Categorical features are assumed to each have a maximum value in the dataset.
_CATEGORICAL_FEATURE_KEYS = [
    "trip_start_hour",
    "trip_start_day",
    "trip_start_month",
    "pickup_census_tract",
    "dropoff_census_tract",
    "pickup_community_area",
    "dropoff_community_area",
]

_DENSE_FLOAT_FEATURE_KEYS = ["trip_miles", "fare", "trip_seconds"]

# Number of buckets used by tf.transform for encoding each feature.
_FEATURE_BUCKET_COUNT = 10

_BUCKET_FEATURE_KEYS = [
    "pickup_latitude",
    "pickup_longitude",
    "dropoff_latitude",
    "dropoff_longitude",
]

# Number of vocabulary terms used for encoding VOCAB_FEATURES by tf.transform
_VOCAB_SIZE = 1000

# Count of out-of-vocab buckets in which unrecognized VOCAB_FEATURES are hashed.
_OOV_SIZE = 10

_VOCAB_FEATURE_KEYS = ["payment_type", "company"]

# Keys
_LABEL_KEY = "tips"
_FARE_KEY = "fare"


def _transformed_name(key):
    return key + "_xf"


def _fill_in_missing(x):
    """Missing values filled with '' (strings) or 0 (numbers), as TFX's helper does."""
    return tft.fill_missing(x)


def preprocessing_fn(inputs):
    """tf.transform's callback function for preprocessing inputs.

    Args:
      inputs: map from feature keys to raw not-yet-transformed features.

    Returns:
      Map from string feature key to transformed feature operations.
    """
    outputs = {}
    for key in _DENSE_FLOAT_FEATURE_KEYS:
        # If sparse make it dense, setting nan's to 0 or '', and apply zscore.
        outputs[_transformed_name(key)] = tft.scale_to_z_score(_fill_in_missing(inputs[key]))

    for key in _VOCAB_FEATURE_KEYS:
        # Build a vocabulary for this feature.
        outputs[_transformed_name(key)] = tft.compute_and_apply_vocabulary(
            _fill_in_missing(inputs[key]), top_k=_VOCAB_SIZE, num_oov_buckets=_OOV_SIZE
        )

    for key in _BUCKET_FEATURE_KEYS:
        outputs[_transformed_name(key)] = tft.bucketize(
            _fill_in_missing(inputs[key]), _FEATURE_BUCKET_COUNT
        )

    for key in _CATEGORICAL_FEATURE_KEYS:
        outputs[_transformed_name(key)] = _fill_in_missing(inputs[key])

    # Was this passenger a big tipper?
    taxi_fare = _fill_in_missing(inputs[_FARE_KEY])
    tips = _fill_in_missing(inputs[_LABEL_KEY])
    outputs[_transformed_name(_LABEL_KEY)] = tft.where(
        tft.is_nan(taxi_fare),
        0,
        # Test if the tip was > 20% of the fare.
        tft.cast(tips > taxi_fare * 0.2, "int64"),
    )
    return outputs
