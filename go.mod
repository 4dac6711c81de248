module github.com/imago-ima/imago

go 1.26.8
