import hashlib
import http.server
import io
import shutil
import threading
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import fmlib
from fmlib.data import movielens as ml_module

# ---------------------------------------------------------------- the real data set


def test_counts(movielens):
    assert len(movielens.ratings) == 100_000
    assert movielens.ratings["user"].nunique() == len(movielens.users) == 943
    assert movielens.ratings["item"].nunique() == len(movielens.items) == 1682
    assert movielens.ratings["rating"].between(1, 5).all()
    assert set(movielens.users.columns) == {
        "user",
        "age",
        "gender",
        "occupation",
        "zip",
    }
    assert movielens.items.loc[0, "genres"] == ("Animation", "Children's", "Comedy")
    assert len(movielens.items.loc[0, "genres"]) == 3
    # u.item is latin-1: titles with accents survive
    assert movielens.items["title"].str.contains("é").any()


def _keys(frame):
    return set(zip(frame["user"], frame["item"]))


def test_five_folds_partition_the_data(movielens):
    everything = _keys(movielens.ratings)
    seen = set()
    for fold in ("u1", "u2", "u3", "u4", "u5"):
        train, test = movielens.split(fold)
        assert len(test) == 20_000 and len(train) == 80_000
        assert _keys(train) | _keys(test) == everything
        assert not _keys(train) & _keys(test)
        assert not seen & _keys(test)
        seen |= _keys(test)
    assert seen == everything


def test_ua_holds_out_ten_ratings_per_user(movielens):
    train, test = movielens.split("ua")
    assert (test.groupby("user").size() == 10).all() and test["user"].nunique() == 943
    assert not _keys(train) & _keys(test)


def test_bad_split_and_name(movielens):
    with pytest.raises(ValueError, match=r"`fold` must be one of .*got 'u6'"):
        movielens.split("u6")
    with pytest.raises(
        ValueError, match=r"`name` must be one of \['ml-100k', 'ml-1m'\]; got 'ml-10m'"
    ):
        fmlib.load_movielens("ml-10m")


def test_loading_present_data_prints_nothing(movielens, capsys):
    fmlib.load_movielens("ml-100k", data_home=movielens.path.parent)
    assert capsys.readouterr().out == ""


def test_data_home_resolution(monkeypatch, tmp_path):
    monkeypatch.setenv("FMLIB_DATA", str(tmp_path / "env"))
    assert ml_module.resolve_data_home(tmp_path / "arg") == tmp_path / "arg"
    assert ml_module.resolve_data_home() == tmp_path / "env"
    monkeypatch.delenv("FMLIB_DATA")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert ml_module.resolve_data_home() == tmp_path / "cache" / "fmlib"


def test_edited_or_truncated_file_is_an_error(movielens, tmp_path):
    copy = tmp_path / "ml-100k"
    shutil.copytree(movielens.path, copy)
    with open(copy / "u.data", "r+b") as f:
        f.truncate(1000)
    with pytest.raises(
        fmlib.MovieLensError, match=r"u.data does not match the official ml-100k file"
    ):
        fmlib.load_movielens("ml-100k", data_home=tmp_path)


# ------------------------------------------------ the download path, on a local server


class Server:
    """A web server on 127.0.0.1 serving files from a dict; counts requests."""

    def __init__(self, files: dict[str, bytes], truncate: bool = False):
        self.files, self.requests = files, []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests.append(self.path)
                body = outer.files.get(self.path.lstrip("/"))
                if body is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # an interrupted transfer: half the promised bytes, then the connection closes
                self.wfile.write(body[: len(body) // 2] if truncate else body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def ml100k_zip(movielens):
    """A zip in the layout of GroupLens's, built from the verified shared copy."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for path in sorted(movielens.path.iterdir()):
            if path.is_file():
                z.write(path, f"ml-100k/{path.name}")
    data = buffer.getvalue()
    return data, hashlib.sha256(data).hexdigest()


def leftovers(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def test_download_verify_extract_then_load_offline(ml100k_zip, tmp_path, capsys):
    data, digest = ml100k_zip
    server = Server({"ml-100k.zip": data})
    try:
        ml = fmlib.load_movielens(
            "ml-100k", data_home=tmp_path, base_url=server.url, zip_sha256=digest
        )
    finally:
        server.close()
    assert server.requests == ["/ml-100k.zip"]
    assert len(ml.ratings) == 100_000 and ml.path == tmp_path / "ml-100k"
    assert leftovers(tmp_path) == ["ml-100k"]  # no zip, no temporary folders
    capsys.readouterr()
    again = fmlib.load_movielens(
        "ml-100k", data_home=tmp_path, base_url="http://127.0.0.1:9/"
    )
    assert len(again.ratings) == 100_000 and capsys.readouterr().out == ""


def test_checksum_mismatch_leaves_nothing(ml100k_zip, tmp_path):
    data, _ = ml100k_zip
    server = Server({"ml-100k.zip": data})
    try:
        with pytest.raises(fmlib.MovieLensError, match=r"failed its sha256 check"):
            fmlib.load_movielens(
                "ml-100k", data_home=tmp_path, base_url=server.url, zip_sha256="0" * 64
            )
    finally:
        server.close()
    assert leftovers(tmp_path) == []


def test_interrupted_download_leaves_nothing_and_a_retry_works(ml100k_zip, tmp_path):
    data, digest = ml100k_zip
    broken = Server({"ml-100k.zip": data}, truncate=True)
    try:
        with pytest.raises(fmlib.MovieLensError):
            fmlib.load_movielens(
                "ml-100k", data_home=tmp_path, base_url=broken.url, zip_sha256=digest
            )
    finally:
        broken.close()
    assert leftovers(tmp_path) == []
    good = Server({"ml-100k.zip": data})
    try:
        ml = fmlib.load_movielens(
            "ml-100k", data_home=tmp_path, base_url=good.url, zip_sha256=digest
        )
    finally:
        good.close()
    assert len(ml.ratings) == 100_000


def test_no_network_says_where_to_put_the_files(tmp_path):
    server = Server({})
    url = server.url
    server.close()  # nothing listens on that port now
    with pytest.raises(fmlib.MovieLensError) as info:
        fmlib.load_movielens("ml-100k", data_home=tmp_path, base_url=url)
    message = str(info.value)
    assert (
        f"{url}ml-100k.zip" in message
        and str(tmp_path) in message
        and "FMLIB_DATA" in message
    )
    assert leftovers(tmp_path) == []


def test_a_zip_placed_in_the_data_home_is_used(ml100k_zip, tmp_path):
    data, digest = ml100k_zip
    (tmp_path / "ml-100k.zip").write_bytes(data)
    ml = fmlib.load_movielens(
        "ml-100k", data_home=tmp_path, base_url="http://127.0.0.1:9/", zip_sha256=digest
    )
    assert len(ml.ratings) == 100_000


def test_download_false_is_an_error_when_missing(tmp_path):
    with pytest.raises(
        fmlib.MovieLensError, match=r"does not exist and download=False"
    ):
        fmlib.load_movielens("ml-100k", data_home=tmp_path, download=False)


# ------------------------------------------------------------- ml-1m, on a fixture


def ml1m_fixture_zip() -> bytes:
    files = {
        "ratings.dat": "1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n",
        "users.dat": "1::F::1::10::48067\n2::M::56::16::70072\n",
        "movies.dat": "10::GoldenEye (1995)::Action|Adventure|Thriller\n20::Café Society (1995)::Drama\n",
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, text in files.items():
            z.writestr(f"ml-1m/{name}", text.encode("latin-1"))
    return buffer.getvalue()


def test_ml1m_format(tmp_path):
    data = ml1m_fixture_zip()
    server = Server({"ml-1m.zip": data})
    try:
        ml = fmlib.load_movielens(
            "ml-1m",
            data_home=tmp_path,
            base_url=server.url,
            zip_sha256=hashlib.sha256(data).hexdigest(),
        )
    finally:
        server.close()
    assert ml.ratings.to_dict("list") == {
        "user": [1, 1, 2],
        "item": [10, 20, 10],
        "rating": [5, 3, 4],
        "timestamp": [978300760, 978302109, 978301968],
    }
    assert ml.users.to_dict("list") == {
        "user": [1, 2],
        "age": [1, 56],
        "gender": ["F", "M"],
        "occupation": [10, 16],
        "zip": ["48067", "70072"],
    }
    assert ml.items["genres"].tolist() == [
        ("Action", "Adventure", "Thriller"),
        ("Drama",),
    ]
    assert ml.items["title"].tolist()[1] == "Café Society (1995)"
    with pytest.raises(ValueError, match=r"predefined splits exist for ml-100k only"):
        ml.split("u1")
    # the manifest written at extraction protects the files from now on
    with open(tmp_path / "ml-1m" / "ratings.dat", "a") as f:
        f.write("3::10::1::978300000\n")
    with pytest.raises(fmlib.MovieLensError, match=r"ratings.dat does not match"):
        fmlib.load_movielens("ml-1m", data_home=tmp_path)


def test_ml1m_copy_without_manifest_cannot_be_verified(tmp_path):
    with zipfile.ZipFile(io.BytesIO(ml1m_fixture_zip())) as z:
        z.extractall(tmp_path)
    with pytest.raises(fmlib.MovieLensError, match=r"cannot be verified"):
        fmlib.load_movielens("ml-1m", data_home=tmp_path)


def test_end_to_end_fm_on_u1_beats_0_95(movielens):
    train, test = movielens.split("u1")
    enc = fmlib.FeatureEncoder(categorical=["user", "item"])
    X_train, X_test = enc.fit_transform(train), enc.transform(test)
    fm = fmlib.FactorizationMachine(enc.n_features_, k=8, seed=0)
    fm.set_weights(w0=train["rating"].mean())
    history = fmlib.fit(
        fm,
        X_train,
        train["rating"],
        num_epochs=6,
        batch_size=1024,
        lr=0.01,
        lambda_w=1e-4,
        lambda_v=1e-4,
        validation_data=(X_test, test["rating"]),
        seed=0,
    )
    rmse = float(
        np.sqrt(np.mean((fm.predict(X_test) - test["rating"].to_numpy()) ** 2))
    )
    assert rmse == pytest.approx(history["val_rmse"].iloc[-1], rel=1e-5)
    assert rmse < 0.95, rmse
    mean_only = float(np.sqrt(np.mean((train["rating"].mean() - test["rating"]) ** 2)))
    assert rmse < mean_only - 0.15


def test_side_features_join_in_order_with_age_groups(movielens):
    train, _ = movielens.split("u1")
    rows = movielens.with_side_features(train.iloc[:500])
    assert rows[["user", "item", "rating"]].equals(
        train.iloc[:500][["user", "item", "rating"]].reset_index(drop=True)
    )
    users = movielens.users.set_index("user")
    for _, row in rows.iloc[::37].iterrows():  # against a hand-written bucketing
        age = users.loc[row["user"], "age"]
        expected = (
            "<18"
            if age < 18
            else "18-24"
            if age < 25
            else "25-34"
            if age < 35
            else "35-44"
            if age < 45
            else "45-49"
            if age < 50
            else "50-55"
            if age < 56
            else "56+"
        )
        assert row["age_bucket"] == expected
        assert row["gender"] == users.loc[row["user"], "gender"]
        assert (
            row["genres"]
            == movielens.items.set_index("item").loc[row["item"], "genres"]
        )


def test_side_features_reject_unknown_ids(movielens):
    bad = pd.DataFrame({"user": [1, 5000], "item": [1, 1], "rating": [3, 4]})
    with pytest.raises(
        ValueError, match="1 rows whose user is not in ml-100k, e.g. user=5000"
    ):
        movielens.with_side_features(bad)
    with pytest.raises(ValueError, match="must have columns 'user' and 'item'"):
        movielens.with_side_features(bad.drop(columns="item"))


def test_date_features_are_the_rating_day_and_the_release_year(movielens):
    train, _ = movielens.split("u1")
    rows = movielens.with_side_features(train.iloc[:300], dates=True)
    items = movielens.items.set_index("item")
    for _, row in rows.iloc[::29].iterrows():
        stamp = pd.Timestamp(int(row["timestamp"]), unit="s")
        assert row["day"] == f"{stamp.year:04d}-{stamp.month:02d}-{stamp.day:02d}"
        released = items.loc[row["item"], "release_date"]
        assert row["release_year"] == (
            "unknown" if pd.isna(released) else str(released.year)
        )
    assert "day" not in movielens.with_side_features(train.iloc[:5]).columns
