"""The 12 standard leads are 8 independent signals: the other 4 limb leads follow from I and II.

Einthoven's and Goldberger's equations hold exactly for every recorded ECG (up to rounding):
III = II - I, aVR = -(I + II) / 2, aVL = I - II / 2, aVF = II - I / 2. A generator of all 12
leads must learn them; one of the 8 independent leads (I, II, V1-V6) gets them for free and
costs a third less at its input and output (SSSD-ECG generates these 8 for the same reason).
Both work on records in mV: the equations do not hold between leads normalised separately.
"""

import numpy as np

from synthecg.data.store import STANDARD_LEADS

INDEPENDENT_LEADS = ("I", "II", "V1", "V2", "V3", "V4", "V5", "V6")
DERIVED_LEADS = ("III", "aVR", "aVL", "aVF")
LEAD_CHOICES = {"independent": INDEPENDENT_LEADS, "all": STANDARD_LEADS}


def lead_indices(names, leads=STANDARD_LEADS) -> list[int]:
    """Positions of `names` among `leads`."""
    return [list(leads).index(name) for name in names]


def derived_limb_leads(lead_i: np.ndarray, lead_ii: np.ndarray) -> np.ndarray:
    """III, aVR, aVL, aVF from leads I and II (any shape [..., T], mV) -> [..., 4, T]."""
    return np.stack([lead_ii - lead_i, -(lead_i + lead_ii) / 2, lead_i - lead_ii / 2, lead_ii - lead_i / 2], axis=-2)


def complete_leads(x_independent_mv: np.ndarray) -> np.ndarray:
    """Records of the 8 independent leads [N, 8, T] in mV -> all 12 [N, 12, T] in standard order."""
    x = np.asarray(x_independent_mv)
    full = np.empty((x.shape[0], len(STANDARD_LEADS), x.shape[-1]), dtype=x.dtype)
    full[:, lead_indices(INDEPENDENT_LEADS)] = x
    full[:, lead_indices(DERIVED_LEADS)] = derived_limb_leads(x[:, 0], x[:, 1])
    return full


def limb_lead_residual(x_mv: np.ndarray) -> np.ndarray:
    """How far records [N, 12, T] in mV are from obeying the limb-lead equations, per record [N].

    RMS of (recorded - derived) over III, aVR, aVL, aVF, over the RMS of those four recorded
    leads: 0 for a consistent record, ~1 or more when they are unrelated to I and II.
    """
    x = np.asarray(x_mv, np.float64)
    i, ii = (x[:, STANDARD_LEADS.index(name)] for name in ("I", "II"))
    recorded = x[:, lead_indices(DERIVED_LEADS)]
    error = recorded - derived_limb_leads(i, ii)
    return np.sqrt((error**2).mean(axis=(1, 2)) / np.maximum((recorded**2).mean(axis=(1, 2)), 1e-12))
