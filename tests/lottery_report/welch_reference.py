"""The oracle of test_stats.cpp: Welch's t-test by scipy.stats.ttest_ind(equal_var=False),
the 90% interval and the equivalence test (TOST) from scipy.stats.t, the Student t CDF and
quantile, and the regularized incomplete beta function (scipy.special.betainc), on fixed
samples. Prints JSON; exits 77 when scipy is absent (the test is then skipped)."""
import json
import math
import sys
import warnings

try:
    from scipy import special, stats
except ImportError:
    print("SKIPPED: scipy is not installed (scripts/setup.sh installs python3-scipy)")
    sys.exit(77)

# [0.5, 0.5, 0.5] has no variance; scipy warns that its moments lose precision (they are exact here)
warnings.simplefilter("ignore", RuntimeWarning)

# Fixed samples: tiny n, unequal n, unequal variances, one side without variance, large t.
SAMPLES = [
    ([0.80, 0.81, 0.82], [0.60, 0.62, 0.61], 0.02),
    ([0.79, 0.80], [0.78, 0.81], 0.02),
    ([0.339, 0.351, 0.327], [0.327, 0.300, 0.354], 0.02),
    ([0.5, 0.5, 0.5], [0.4, 0.45, 0.52, 0.38], 0.05),
    ([1.0, 2.0, 3.0, 4.0, 5.0], [2.0, 2.5, 2.1], 1.0),
    ([0.1, 0.9, 0.3, 0.7, 0.5, 0.2, 0.8], [0.45, 0.55, 0.5], 0.1),
    ([10.0, 10.1, 9.9, 10.05, 9.95], [0.0, 0.1], 0.5),
]


def welch(a, b, margin):
    na, nb = len(a), len(b)
    ma, mb = sum(a) / na, sum(b) / nb
    va = sum((x - ma) ** 2 for x in a) / (na - 1) / na
    vb = sum((x - mb) ** 2 for x in b) / (nb - 1) / nb
    result = stats.ttest_ind(a, b, equal_var=False)
    se = math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    d = ma - mb
    half = stats.t.ppf(0.95, df) * se
    p_equivalence = max(stats.t.sf((d + margin) / se, df), stats.t.cdf((d - margin) / se, df))
    return {"a": a, "b": b, "margin": margin, "t": float(result.statistic), "df": df, "p": float(result.pvalue),
            "low": d - half, "high": d + half, "p_equivalence": float(p_equivalence)}


cdf = [{"t": t, "df": df, "cdf": float(stats.t.cdf(t, df)), "quantile_of": q, "quantile": float(stats.t.ppf(q, df))}
       for t, df, q in [(-3.0, 1.5, 0.05), (0.7, 2.0, 0.95), (2.1, 3.7, 0.975), (-0.2, 10.0, 0.5), (5.0, 30.0, 0.999),
                        (40.0, 4.0, 1e-4)]]
beta = [{"a": a, "b": b, "x": x, "value": float(special.betainc(a, b, x))}
        for a, b, x in [(0.5, 0.5, 0.3), (2.0, 0.5, 0.9), (1.85, 0.5, 0.02), (15.0, 0.5, 0.999), (3.0, 7.0, 0.25)]]
json.dump({"welch": [welch(*s) for s in SAMPLES], "cdf": cdf, "beta": beta}, sys.stdout)
