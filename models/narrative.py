"""One person's explanation in plain words, from their own answers: drivers, signs, missing answers,
what-ifs, and advice chosen by the drivers."""

from __future__ import annotations

import pandas as pd

from balanceit.data.contract import PAIN_COLUMNS
from balanceit.features.catalogue import BY_NAME
from balanceit.models.whatif import WHAT_IFS

RANK_WORDS = ("the most", "second most", "third most")


def _value(row: pd.Series, column: str) -> object:
    value = row.get(column)
    return None if pd.isna(value) else value


def _about(value: object, unit: str) -> str:
    if value is None:
        return f"an unknown number of {unit}"
    rounded = round(float(value))
    return f"about {rounded} {unit.removesuffix('s') if rounded == 1 else unit}"


# Features described by one answer and its unit: (sentence, answer column, unit).
_ONE_ANSWER = {
    "standing_hours": ("You stand {} a day", "standing_hours_per_day", "hours"),
    "screen_hours": ("You spend {} a day at a screen", "screen_hours_per_day", "hours"),
    "movement_breaks": ("You take {} a day", "movement_breaks_per_day", "movement breaks"),
    "stretching": ("You stretch {} a week", "stretching_days_per_week", "days"),
}
_OCCUPATION = {"desk": "You work at a desk", "standing": "You stand at work", "manual": "You do manual work",
               "driving": "You drive for work", "student": "You are a student", "retired": "You are retired",
               "other": "Your work is of another kind"}
_STRENGTH = {"unbalanced": "You train some muscles and neglect their opposites",
             "balanced": "You do balanced strength training", "none": "You do no strength training"}


# What a person does, per exercise feature; "You X" becomes "You don't X" for one who does not.
_EXERCISE = {"walking": "You walk for exercise", "running": "You run", "cycling": "You cycle", "swimming": "You swim",
             "yoga": "You do yoga", "pilates": "You do pilates", "team_sports": "You play team sports",
             "racket_sports": "You play racket sports", "other": "You do other exercise"}
_NOT_EXERCISING = {"other": "You do no other exercise"}


def _no_stretching(answers: pd.Series) -> str:
    """Zero stretching days, said so it does not contradict a yoga or pilates answer."""
    types = str(_value(answers, "exercise_types") or "")
    stretchy = [kind for kind in ("yoga", "pilates") if kind in types.split(";")]
    if stretchy:
        return (f"you report no stretching days; your {' and '.join(stretchy)} counts as exercise here, "
                "not as the short stretches after exercise or sitting that the model counts")
    return "you don't stretch"


def _situation(feature: str, answers: pd.Series, features: pd.Series) -> str:
    """What the person's answers say about one catalogue feature."""
    a = lambda column: _value(answers, column)  # noqa: E731
    f = lambda column: _value(features, column)  # noqa: E731
    if feature == "stretching" and a("stretching_days_per_week") in (0, 0.0):
        return _no_stretching(answers).capitalize()
    if feature in _ONE_ANSWER:
        template, column, unit = _ONE_ANSWER[feature]
        return template.format(_about(a(column), unit))
    if feature.startswith("exercise_") and feature != "exercise_volume":
        kind = feature.removeprefix("exercise_")
        does = _EXERCISE[kind]
        if f(BY_NAME[feature].column_names[0]) in (None, 0, "0"):
            return _NOT_EXERCISING.get(kind, does.replace("You ", "You don't ", 1))
        stretching = a("stretching_days_per_week")
        if kind in ("running", "walking") and stretching is not None and int(stretching) < 3:
            return f"{does} and " + (_no_stretching(answers).removeprefix("you ") if int(stretching) == 0
                                     else f"stretch {_about(stretching, 'days')} a week")
        return does
    if feature == "sitting_hours":
        measured = f("mean_sedentary_hours")
        return f"You sit {_about(a('sitting_hours_per_day'), 'hours')} a day" + (
            f" (your wearable measured {float(measured):.0f} sedentary hours)" if measured is not None else "")
    if feature == "occupation":
        return _OCCUPATION.get(a("occupation"), "Your occupation was not stated")
    if feature == "daily_steps":
        steps = f("mean_steps")
        return (f"Your wearable counted about {float(steps):,.0f} steps a day" if steps is not None
                else "No wearable data was available")
    if feature == "exercise_volume":
        return f"You exercise {_about(f('exercise_volume_minutes'), 'minutes')} a week"
    if feature == "strength_training":
        return _STRENGTH.get(a("strength_training"), "Your strength training was not stated")
    if feature == "age":
        return f"You are {a('age')} years old"
    if feature == "sex":
        return f"Your sex is {a('sex')}"
    if feature == "bmi":
        bmi = f("bmi")
        return f"Your body-mass index is about {float(bmi):.0f}" if bmi is not None else "Your BMI is unknown"
    return BY_NAME[feature].label


def _answer_said(pair: str) -> dict[str, str]:
    """A stored `column=value` pair as a reader would say it: `stretching_days_per_week=2` -> `Stretching
    days per week`, `2`; `exercise_types=running;walking;weight_lifting` -> `running, walking and weight
    lifting`."""
    column, value = pair.split("=", 1)
    question = column.replace("_", " ").replace("mean ", "average ")
    choices = [choice.strip().replace("_", " ") for choice in value.split(";") if choice.strip()]
    said = ", ".join(choices[:-1]) + " and " + choices[-1] if len(choices) > 1 else value.replace("_", " ")
    return {"question": question[:1].upper() + question[1:], "value": said}


def sign_sentences(answers: pd.Series) -> list[str]:
    sentences = [
        f"You report {answers[column]} {column.replace('_', ' ')}, which often comes with muscle imbalance."
        for column in PAIN_COLUMNS if _value(answers, column) in ("occasional", "frequent")
    ]
    if _value(answers, "posture_self_report") == "poor":
        sentences.append("You rate your posture as poor, which often comes with muscle imbalance.")
    return sentences


ADVICE: dict[str, tuple[str, str]] = {
    "sitting_hours": ("Break up sitting",
                      "Stand up and move for 2-3 minutes every 30-60 minutes, and stretch your hip flexors "
                      "and chest once a day: long sitting shortens them."),
    "movement_breaks": ("Move every hour",
                        "Set a reminder to get up at least once an hour you sit; walk, roll your shoulders, "
                        "extend your back."),
    "screen_hours": ("Ease the screen posture",
                     "Raise the screen to eye level, do chin tucks and upper-back extensions, and stretch "
                     "your chest to counter a forward head and rounded shoulders."),
    "occupation": ("Balance your work posture",
                   "Alternate positions during the day and strengthen the muscles your job rarely uses "
                   "(upper back and glutes for desk and driving work, core for manual work)."),
    "daily_steps": ("Walk more", "Add short walks to reach at least 7,500 steps on most days."),
    "exercise_running": ("Stretch what running tightens",
                         "Stretch calves and hamstrings after every run, at least 3 days a week."),
    "exercise_walking": ("Stretch what walking tightens",
                         "Stretch calves and hamstrings after your walks, at least 3 days a week."),
    "exercise_cycling": ("Open the hips after cycling",
                         "Stretch hip flexors and hamstrings after rides and strengthen your glutes."),
    "exercise_swimming": ("Balance the shoulders",
                          "Add rotator-cuff and upper-back (pulling) exercises to your swimming."),
    "exercise_team_sports": ("Strengthen the back of the legs",
                             "Add hamstring strengthening and hip mobility to your sport."),
    "strength_training": ("Train the neglected side",
                          "Pair every push with a pull and biceps with triceps; start the weaker side with "
                          "light weights and many repetitions."),
    "stretching": ("Stretch 3 days a week",
                   "Stretch the muscles your day tightens (chest, hip flexors, hamstrings, calves) at least "
                   "3 days a week, holding each stretch about 30 seconds."),
    "age": ("Keep joints moving", "A short daily joint-mobility routine (neck, shoulders, hips, ankles) "
                                  "keeps range of motion as you age."),
    "bmi": ("Build general activity", "Regular moderate activity and strength work ease the load on back and hips."),
}
GENERAL_ADVICE = ("Keep joints moving", "A few minutes of joint mobility every day keeps muscles balanced.")


def explanation(scored: pd.Series, answers: pd.Series, features: pd.Series,
                contributions: dict[str, float]) -> dict[str, object]:
    """Everything a person is told, as one dict (printed by `explain`, rendered in the person report)."""
    drivers = [scored[f"driver_{rank}"] for rank in (1, 2, 3) if isinstance(scored[f"driver_{rank}"], str)]
    missing = [name for name in str(scored["missing_answers"] or "").split(";") if name]
    what_ifs = [
        {"label": w.label, "risk_before": float(scored["risk"]), "risk_after": float(scored[f"whatif_{w.name}"])}
        for w in WHAT_IFS
        if not pd.isna(scored[f"whatif_{w.name}"]) and scored[f"whatif_{w.name}"] < scored["risk"] - 0.005
    ]
    band = scored["band"]
    advice = dict.fromkeys(ADVICE[driver] for driver in drivers if driver in ADVICE) or [GENERAL_ADVICE]
    return {
        "respondent_id": scored["respondent_id"], "submitted_at": str(scored["submitted_at"]),
        "risk": float(scored["risk"]), "band": band,
        "summary": (f"Your estimated risk of muscle imbalance is {scored['risk']:.0%} ({band})."
                    + (f" What raises it most: {BY_NAME[drivers[0]].label.lower()}." if drivers else "")),
        "drivers": [
            {"feature": name, "label": BY_NAME[name].label,
             "sentence": f"{_situation(name, answers, features)}: this raises your risk {RANK_WORDS[rank]}.",
             "answers": [_answer_said(part) for part in str(scored[f"driver_{rank + 1}_answers"]).split("; ")
                         if "=" in part],
             "contribution": float(contributions.get(name, 0.0))}
            for rank, name in enumerate(drivers)
        ],
        "signs": sign_sentences(answers),
        "missing_answers": missing,
        "what_ifs": sorted(what_ifs, key=lambda w: w["risk_after"]),
        "recommendations": [{"title": title, "text": text} for title, text in advice],
    }
