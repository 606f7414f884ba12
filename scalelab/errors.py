"""The one exception type scalelab shows to a person: a message naming where and what."""


class ScalelabError(Exception):
    """Bad input (a spec, a budget, a profile, an option). The CLI prints the message and exits 2."""


def did_you_mean(word: object, choices) -> str:
    """' (did you mean 'x'?)' for the closest of ``choices``, or ''."""
    import difflib

    if len(str(word)) > 100:  # nothing is that long; comparing a huge word costs seconds
        return ""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""
